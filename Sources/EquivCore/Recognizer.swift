import EquivDSP
import EquivModel
import EquivProtocol
import Foundation

/// What the service publishes about one window.
public struct Decision: Sendable, Equatable {
    public struct RankedClass: Sendable, Equatable {
        public let label: String
        public let probability: Float
    }

    /// The winning class, or nil when idle or abstaining.
    public let label: String?
    public let probability: Float
    /// Classes with their probabilities, most probable first.
    public let top: [RankedClass]
    /// The shift the canonicalizer removed, in bins and in semitones (positive: the machine
    /// sounded higher than nominal).
    public let shiftBins: Int
    public let shiftSemitones: Double
    /// Mode `partial` only: the shift undone on the part that stays at its frequency (0 when it
    /// stayed, `shiftBins` when it moved with the rest).
    public let fixedShiftBins: Int?
    public let fixedShiftSemitones: Double?
    /// Canonicalizer confidence: max p, the margin between the top two, and the entropy (nats).
    public let canonConfidence: Float
    public let canonMargin: Float
    public let canonEntropy: Float
    public let fallback: Fallback
    /// The shifts (bins) the classifier was run at: [0] plain, the one chosen canonicalized, the
    /// top-K averaged, every one for group averaging, none when idle.
    public let classifiedShifts: [Int]
    public var classifierCalls: Int { classifiedShifts.count }
}

/// Canonicalize → classify → decide (docs/architecture.md §2) for one window at a time, on sessions planned
/// once: nothing is allocated per window beyond the returned Decision.
public final class Recognizer {
    public struct Thresholds: Sendable {
        public var canonicalizerMinP: Float
        public var topK: Int
        public var classifierMinP: Float
        /// Windows whose mean log magnitude is below this are idle (ln 1e-5 ≈ −11.5: near silence).
        public var idleMeanLog: Float = -11.5

        public init(canonicalizerMinP: Float, topK: Int, classifierMinP: Float, idleMeanLog: Float = -11.5) {
            self.canonicalizerMinP = canonicalizerMinP
            self.topK = topK
            self.classifierMinP = classifierMinP
            self.idleMeanLog = idleMeanLog
        }

        /// The calibrated thresholds a bundle ships with.
        public init(bundle: BundleManifest) {
            self.init(
                canonicalizerMinP: bundle.thresholds.canonicalizerMinP, topK: bundle.thresholds.topK,
                classifierMinP: bundle.thresholds.classifierMinP)
        }
    }

    /// The bundle's manifest; the models themselves are not kept once planned.
    public let manifest: BundleManifest
    public let mode: RecognitionMode
    public let thresholds: Thresholds
    private let classes: [String]
    private let range: Int
    private let bins: Int, frames: Int
    private let canonicalizer: InferenceSession
    /// Planned for one window: the top-K and group-averaging paths call it once per shift, which
    /// is faster here than one batched call (batch 3: 1.94 ms against 3 × 0.59; batch 49: 35 ms
    /// against 49 × 0.59).
    private let classifier: InferenceSession
    /// Mode `partial` only.
    private let fixedPart: FixedPartCanonicalizer?
    private let feed: ClassifierFeed
    private let activation: OutputMap.Activation
    /// For each class, in `classes` order, the classifier outputs it gathers.
    private let labelOutputs: [[Int]]
    private let shiftProbabilities: UnsafeMutableBufferPointer<Float>
    private let outputProbabilities: UnsafeMutableBufferPointer<Float>
    private let probabilities: UnsafeMutableBufferPointer<Float>
    private let averaged: UnsafeMutableBufferPointer<Float>

    public init(bundle: ModelBundle, mode: RecognitionMode = .topk, thresholds: Thresholds? = nil) throws(BundleError) {
        let m = bundle.manifest
        self.manifest = m
        self.mode = mode
        self.thresholds = thresholds ?? Thresholds(bundle: m)
        guard (1...(2 * m.shift.rangeBins + 1)).contains(self.thresholds.topK) else {
            throw BundleError(path: bundle.directory, field: "thresholds.top_k", reason: "must be in 1...\(2 * m.shift.rangeBins + 1)")
        }
        classes = m.classes
        range = m.shift.rangeBins
        let (bins, frames) = (m.frontEnd.binCount, m.frontEnd.windowFrames)
        (self.bins, self.frames) = (bins, frames)
        let manifestPath = (bundle.directory as NSString).appendingPathComponent("bundle.json")
        let entry = m.models["classifier"]
        let input = entry?.input ?? .equivdSpectrogram
        do {
            feed = try ClassifierFeed(input: input, frontEnd: m.frontEnd, rangeBins: range)
        } catch {
            throw BundleError(path: manifestPath, error)
        }
        // The sessions run one after another, so they share one scratch buffer.
        var options = InferenceSession.Options()
        options.workspace = InferenceSession.Workspace()
        /// Plans `model` for one input of `shape` and checks that it gives one [1, n] output.
        func plan(_ model: ONNXModel, _ role: String, shape: [Int], outputs: (Int) -> Bool, expected: String) throws(BundleError) -> InferenceSession {
            let session: InferenceSession
            do {
                session = try InferenceSession(model: model, inputShapes: [model.inputNames[0]: shape], options: options)
            } catch {
                throw BundleError(path: model.source, field: nil, reason: "\(error)")
            }
            guard session.outputs.count == 1, session.outputs[0].shape.count == 2, session.outputs[0].shape[0] == 1,
                outputs(session.outputs[0].shape[1])
            else {
                throw BundleError(
                    path: manifestPath, field: "models.\(role)",
                    reason: "outputs \(session.outputs.map(\.shape)) for one input \(shape), expected \(expected)")
            }
            return session
        }
        canonicalizer = try plan(
            bundle.canonicalizer, "canonicalizer", shape: [1, 1, bins, frames], outputs: { $0 == 2 * m.shift.rangeBins + 1 },
            expected: "[[1, \(2 * m.shift.rangeBins + 1)]]")
        let map = entry?.output ?? .identity(classes)
        classifier = try plan(
            bundle.classifier, "classifier", shape: input.shape(bins: bins, frames: frames),
            outputs: { n in entry?.output == nil ? n == m.classes.count : n >= 1 },
            expected: entry?.output == nil ? "[[1, \(m.classes.count)]] (one per class)" : "one [1, n] output")
        if mode == .partial {
            guard let part = bundle.fixedPart else {
                throw BundleError(
                    path: manifestPath, field: "models.separator",
                    reason: "missing: mode partial needs a bundle with a separator and FixedPose (equivtrain fixed-part)")
            }
            guard input == .equivdSpectrogram else {
                throw BundleError(path: manifestPath, field: "models.classifier.input", reason: "mode partial needs a classifier of equivd's spectrogram")
            }
            fixedPart = FixedPartCanonicalizer(
                separator: try plan(part.separator, "separator", shape: [1, 1, bins, frames], outputs: { $0 == bins }, expected: "[[1, \(bins)]]"),
                pose: try plan(part.pose, "fixed_pose", shape: [1, 1, bins, 1], outputs: { $0 == 2 * m.shift.rangeBins + 1 },
                               expected: "[[1, \(2 * m.shift.rangeBins + 1)]]"),
                bins: bins, frames: frames, range: range, floor: m.frontEnd.logFloor)
        } else {
            fixedPart = nil
        }
        let outputCount = classifier.outputs[0].shape[1]
        do {
            try map.validate(labels: classes, outputs: outputCount, field: "models.classifier.output")
        } catch {
            throw BundleError(path: manifestPath, error)
        }
        activation = map.activation
        labelOutputs = classes.map { map.classes[$0]! }
        shiftProbabilities = .allocate(capacity: 2 * range + 1)
        outputProbabilities = .allocate(capacity: outputCount)
        probabilities = .allocate(capacity: classes.count)
        averaged = .allocate(capacity: classes.count)
    }

    deinit {
        shiftProbabilities.deallocate()
        outputProbabilities.deallocate()
        probabilities.deallocate()
        averaged.deallocate()
    }

    /// Samples of audio, at equivd's rate and ending at the window's last sample, that a
    /// classifier with its own input needs beside the spectrogram (0 for equivd's own).
    public var audioSamplesNeeded: Int { feed.audioSamplesNeeded }

    /// The classifier's input tensor shape.
    public var classifierInputShape: [Int] { classifier.inputs[0].shape }

    /// What the classifier is given for `window` (and its `audio`, as `decide` takes it) with
    /// `shift` bins undone: `equivd features --bundle` writes it, so it can be checked.
    public func classifierInput(for window: UnsafeBufferPointer<Float>, audio: UnsafeBufferPointer<Float>, shift: Int) -> [Float] {
        feed.fill(classifier.inputs[0].buffer, window: window, windowAudio: audio, shift: shift)
        return Array(classifier.inputs[0].buffer)
    }

    /// Decides one window of `bins × frames` log-band values (row-major, as `FrontEnd` emits) and,
    /// for a classifier with its own input, the window's `audio` (`audioSamplesNeeded` samples
    /// ending at its last; fewer are preceded by silence).
    public func decide(_ window: UnsafeBufferPointer<Float>, audio: UnsafeBufferPointer<Float> = .init(start: nil, count: 0)) -> Decision {
        precondition(window.count == bins * frames, "window has \(window.count) values, expected \(bins * frames)")
        var sum: Float = 0
        for v in window { sum += v }
        if sum / Float(window.count) < thresholds.idleMeanLog {
            return decision(label: nil, probability: 0, shift: 0, canon: (1, 1, 0), fallback: .idle, shifts: [], classify: false)
        }
        switch mode {
        case .vanilla:
            runClassifier(on: window, audio: audio, shift: 0)
            return result(shift: 0, canon: (1, 1, 0), fallback: .none, shifts: [0])
        case .groupavg:
            let shifts = Array(-range...range)
            average(window, audio: audio, shifts: shifts, weights: .init(repeating: 1 / Float(shifts.count), count: shifts.count))
            return result(shift: 0, canon: (1, 1, 0), fallback: .none, shifts: shifts)
        case .canon, .topk, .partial:
            _ = canonicalizer.inputs[0].buffer.update(fromContentsOf: window)
            canonicalizer.run()
            let p = shiftProbabilities
            softmax(UnsafeBufferPointer(canonicalizer.outputs[0].buffer), into: p)
            let order = p.indices.sorted { p[$0] > p[$1] }
            let best = order[0]
            let canon = (p[best], p[best] - p[order[1]], -p.reduce(0) { $1 > 0 ? $0 + $1 * log($1) : $0 })
            let shift = best - range
            if mode == .topk && p[best] < thresholds.canonicalizerMinP {
                let picks = Array(order.prefix(thresholds.topK))
                let total = picks.reduce(0) { $0 + p[$1] }
                let shifts = picks.map { $0 - range }
                average(window, audio: audio, shifts: shifts, weights: picks.map { p[$0] / total })
                let fallback: Fallback = maxProbability() < thresholds.classifierMinP ? .abstain : .topk
                return result(shift: shift, canon: canon, fallback: fallback, shifts: shifts)
            }
            // Mode partial at shift 0 moves nothing: X̃ is the window itself (to rounding).
            var fixedShift: Int? = fixedPart == nil ? nil : 0
            if let fixedPart, shift != 0 {
                fixedShift = fixedPart.canonicalize(window, shift: shift, into: classifier.inputs[0].buffer)
                classifier.run()
                classProbabilities(UnsafeBufferPointer(classifier.outputs[0].buffer))
            } else {
                runClassifier(on: window, audio: audio, shift: shift)
            }
            let fallback: Fallback = mode != .canon && maxProbability() < thresholds.classifierMinP ? .abstain : .none
            return result(shift: shift, canon: canon, fallback: fallback, shifts: [shift], fixedShift: fixedShift)
        }
    }

    /// Decides `window` as `decide` does and keeps what an engineer looking at it wants to see:
    /// the spectrogram before and after the shift is undone, the canonicalizer's distribution,
    /// the model's own input before and after, and why the fallback was taken (`equivd inspect`).
    public func inspect(_ window: UnsafeBufferPointer<Float>, audio: UnsafeBufferPointer<Float> = .init(start: nil, count: 0)) -> Inspection {
        let decision = decide(window, audio: audio)
        let canonicalizerRan = decision.fallback != .idle && [.canon, .topk, .partial].contains(mode)
        let shifts = canonicalizerRan ? Array(shiftProbabilities) : []
        let received = Array(window)
        let canonicalized = decision.fixedShiftBins == nil
            ? Inspection.canonicalized(received, bins: bins, frames: frames, shift: decision.shiftBins)
            : Array(classifier.inputs[0].buffer)
        var modelInput: Inspection.ModelInput?
        if feed.audioSamplesNeeded > 0 {
            modelInput = .init(
                input: feed.input, received: classifierInput(for: window, audio: audio, shift: 0),
                canonicalized: classifierInput(for: window, audio: audio, shift: decision.shiftBins))
        }
        var sum: Float = 0
        for v in window { sum += v }
        return Inspection(
            decision: decision, mode: mode, thresholds: thresholds, bins: bins, frames: frames, rangeBins: range,
            received: received, canonicalized: canonicalized, shiftProbabilities: shifts, modelInput: modelInput,
            meanLog: sum / Float(window.count))
    }

    private func runClassifier(on window: UnsafeBufferPointer<Float>, audio: UnsafeBufferPointer<Float>, shift: Int) {
        feed.fill(classifier.inputs[0].buffer, window: window, windowAudio: audio, shift: shift)
        classifier.run()
        classProbabilities(UnsafeBufferPointer(classifier.outputs[0].buffer))
    }

    /// `probabilities` from the classifier's outputs through the output map (`OutputMap.Activation`).
    private func classProbabilities(_ outputs: UnsafeBufferPointer<Float>) {
        switch activation {
        case .softmax:
            softmax(outputs, into: outputProbabilities)
            for (c, indices) in labelOutputs.enumerated() {
                var sum: Float = 0
                for i in indices { sum += outputProbabilities[i] }
                probabilities[c] = sum
            }
        case .sigmoid:
            for (c, indices) in labelOutputs.enumerated() {
                var best = -Float.infinity
                for i in indices { best = max(best, outputs[i]) }
                probabilities[c] = 1 / (1 + exp(-best))
            }
        }
        var total: Float = 0
        for p in probabilities { total += p }
        if total > 0 { for c in probabilities.indices { probabilities[c] /= total } }
    }

    /// probabilities = Σ weights[i] · softmax(classifier(T_{−shifts[i]} X)).
    private func average(_ window: UnsafeBufferPointer<Float>, audio: UnsafeBufferPointer<Float>, shifts: [Int], weights: [Float]) {
        averaged.update(repeating: 0)
        for (k, w) in zip(shifts, weights) {
            runClassifier(on: window, audio: audio, shift: k)
            for c in 0..<classes.count { averaged[c] += w * probabilities[c] }
        }
        _ = probabilities.update(fromContentsOf: averaged)
    }

    private func softmax(_ logits: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>) {
        var peak = -Float.infinity
        for v in logits { peak = max(peak, v) }
        var total: Float = 0
        for i in logits.indices {
            out[i] = exp(logits[i] - peak)
            total += out[i]
        }
        for i in out.indices { out[i] /= total }
    }

    private func maxProbability() -> Float { probabilities.max() ?? 0 }

    private func result(shift: Int, canon: (Float, Float, Float), fallback: Fallback, shifts: [Int], fixedShift: Int? = nil) -> Decision {
        let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
        return decision(label: fallback == .abstain ? nil : classes[best], probability: probabilities[best], shift: shift,
                        canon: canon, fallback: fallback, shifts: shifts, classify: true, fixedShift: fixedShift)
    }

    private func decision(
        label: String?, probability: Float, shift: Int, canon: (Float, Float, Float), fallback: Fallback, shifts: [Int],
        classify: Bool, fixedShift: Int? = nil
    ) -> Decision {
        let top = classify
            ? probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.map { Decision.RankedClass(label: classes[$0], probability: probabilities[$0]) }
            : []
        return Decision(
            label: label, probability: probability, top: top, shiftBins: shift,
            shiftSemitones: Double(shift) / Double(manifest.shift.binsPerSemitone), fixedShiftBins: fixedShift,
            fixedShiftSemitones: fixedShift.map { Double($0) / Double(manifest.shift.binsPerSemitone) },
            canonConfidence: canon.0, canonMargin: canon.1, canonEntropy: canon.2, fallback: fallback, classifiedShifts: shifts)
    }
}
