import CMalloc
import EquivCore
import EquivDSP
import EquivProtocol
import Foundation

/// A loaded and validated model bundle with the recognizer planned on it: what a reload swaps.
public struct Recognition: @unchecked Sendable {
    public let recognizer: Recognizer
    /// Model name → first 12 hex digits of its SHA-256, as `hello` and `status` report them.
    public let modelIDs: [String: String]

    /// Loads `configuration.model.bundle` for `frontEnd`, refusing a mismatch with the field named.
    public init(configuration c: ServiceConfiguration.Model, frontEnd: FrontEndParameters) throws(BundleError) {
        let bundle = try ModelBundle(directory: c.bundle, frontEnd: frontEnd)
        var thresholds = Recognizer.Thresholds(bundle: bundle.manifest)
        if let p = c.canonicalizerMinP { thresholds.canonicalizerMinP = Float(p) }
        if let k = c.topK { thresholds.topK = k }
        if let p = c.classifierMinP { thresholds.classifierMinP = Float(p) }
        thresholds.idleMeanLog = Float(c.idleMeanLog)
        recognizer = try Recognizer(bundle: bundle, mode: c.mode, thresholds: thresholds)
        modelIDs = bundle.manifest.models.mapValues { String($0.sha256.prefix(12)) }
        // Loading and planning free several copies of the weights (file, protobuf, tensors):
        // hand that memory back to the system instead of keeping it for the process's life.
        malloc_trim(0)
    }

    /// "canonicalizer 1a2b…, classifier 3c4d…", as logs and `--version` name the models.
    public var describedModels: String {
        modelIDs.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    public func hello(source: String) -> HelloEvent {
        let m = recognizer.manifest
        let json = (try? JSONEncoder().encode(m.frontEnd)).flatMap { try? JSONSerialization.jsonObject(with: $0) }
        let frontEnd = (json as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.doubleValue }
        return HelloEvent(
            daemon: "equivd", models: modelIDs, classes: m.classes, frontEnd: frontEnd,
            mode: recognizer.mode, source: source)
    }
}

extension PredictionEvent {
    /// The event for one decided window; its latency runs to now, when the event is made.
    public init(
        window w: AnalysedWindow, decision d: Decision, source: String, sampleRate rate: Int, clip: String? = nil, run: String? = nil
    ) {
        let latencyMs = w.completedAt.duration(to: .now) / .milliseconds(1)
        self.init(
            seq: w.seq, source: source, streamStart: w.streamStart, streamEnd: w.streamEnd,
            wallStart: w.wallStart, wallEnd: w.wallEnd, label: d.label, p: Double(d.probability),
            top: d.top.prefix(3).map { Candidate(label: $0.label, p: Double($0.probability)) },
            shiftSemitones: d.shiftSemitones, canonConfidence: Double(d.canonConfidence),
            canonMargin: Double(d.canonMargin), canonEntropy: Double(d.canonEntropy),
            fallback: d.fallback, classifierCalls: d.classifierCalls, latencyMs: latencyMs,
            gapBeforeMs: Double(w.gapBefore) * 1000 / Double(rate), clip: clip, run: run,
            fixedShiftSemitones: d.fixedShiftSemitones)
    }
}
