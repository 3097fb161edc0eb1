import EquivProtocol

/// One window as the recognizer saw and decided it, for pictures (`Recognizer.inspect`).
public struct Inspection: Sendable {
    /// The classifier's own input (a log-mel patch or a waveform) before and after the shift is undone.
    public struct ModelInput: Sendable {
        public let input: ClassifierInput
        public let received: [Float]
        public let canonicalized: [Float]
    }

    public let decision: Decision
    public let mode: RecognitionMode
    public let thresholds: Recognizer.Thresholds
    public let bins: Int, frames: Int, rangeBins: Int
    /// Log band values, bins × frames row-major (bin 0 lowest): as heard, and with
    /// `decision.shiftBins` undone (what an equivd-spectrogram classifier is given; in mode
    /// `partial`, on what turns with the machine only).
    public let received: [Float]
    public let canonicalized: [Float]
    /// The canonicalizer's probability of each shift −rangeBins…rangeBins; empty when it did not
    /// run (idle, or a mode without it).
    public let shiftProbabilities: [Float]
    /// Only for a classifier with its own input.
    public let modelInput: ModelInput?
    /// The window's mean log magnitude, which the idle gate compares.
    public let meanLog: Float

    /// `window` (bins × frames) with a shift of `shift` bins undone, as an equivd-spectrogram
    /// classifier is given it: bin f reads bin f + shift, the edge bins repeated past the ends.
    public static func canonicalized(_ window: [Float], bins: Int, frames: Int, shift: Int) -> [Float] {
        var out = [Float](repeating: 0, count: window.count)
        window.withUnsafeBufferPointer { w in
            out.withUnsafeMutableBufferPointer { ClassifierFeed.translate(w, bins: bins, frames: frames, shift: shift, into: $0) }
        }
        return out
    }

    /// Why the decision took its fallback, with the thresholds it was compared against.
    public var reason: String {
        let d = decision
        let canonP = shiftProbabilities.max() ?? 0
        func f(_ x: Float) -> String { String(format: "%.3f", x) }
        let averaged = "canonicalizer max p \(f(canonP)) < canonicalizer_min_p \(f(thresholds.canonicalizerMinP)): classifier averaged over the top \(d.classifiedShifts.count) shifts, weighted by p"
        switch d.fallback {
        case .idle:
            return "mean log magnitude \(f(meanLog)) < idle gate \(f(thresholds.idleMeanLog)): not classified"
        case .topk:
            return averaged + "; classifier max p \(f(d.probability)) ≥ classifier_min_p \(f(thresholds.classifierMinP))"
        case .abstain:
            let first = d.classifiedShifts.count > 1 ? averaged + "; " : ""
            return first + "classifier max p \(f(d.probability)) < classifier_min_p \(f(thresholds.classifierMinP)): abstained"
        case .none:
            switch mode {
            case .vanilla: return "mode vanilla: the classifier alone, no shift undone"
            case .groupavg: return "mode groupavg: the classifier averaged over all \(d.classifiedShifts.count) shifts"
            case .canon: return "mode canon: the canonicalizer's most probable shift, p \(f(canonP)), undone; no thresholds"
            case .partial:
                let fixed = d.fixedShiftBins == 0 && d.shiftBins != 0 ? "the part that stays at its frequency left in place" : "the fixed part moved back with it"
                return "mode partial: the canonicalizer's most probable shift, p \(f(canonP)), undone, \(fixed); classifier max p \(f(d.probability)) ≥ classifier_min_p \(f(thresholds.classifierMinP))"
            case .topk:
                return "canonicalizer max p \(f(canonP)) ≥ canonicalizer_min_p \(f(thresholds.canonicalizerMinP)); classifier max p \(f(d.probability)) ≥ classifier_min_p \(f(thresholds.classifierMinP))"
            }
        }
    }
}
