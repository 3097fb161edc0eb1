import EquivDSP
import Foundation

/// What the frozen classifier takes (bundle.json `models.classifier.input`): equivd's own
/// spectrogram window, or the input a pretrained model was made for. The canonicalizer always
/// reads equivd's spectrogram, where a shift is a translation; only the classifier's input
/// differs (docs/architecture.md §4).
public enum ClassifierInput: Sendable, Equatable {
    /// `[1, 1, bin_count, window_frames]`, the window translated back by the shift found.
    case equivdSpectrogram
    /// A log-mel patch of the window's audio, resampled to undo the shift found; `shape` is the
    /// model's input tensor.
    case logMel(LogMelParameters, shape: [Int])
    /// `samples` samples of the window's audio at `sampleRate`, resampled to undo the shift found.
    case waveform(sampleRate: Int, samples: Int, shape: [Int])

    /// The model's input tensor shape, given equivd's window size.
    func shape(bins: Int, frames: Int) -> [Int] {
        switch self {
        case .equivdSpectrogram: [1, 1, bins, frames]
        case .logMel(_, let shape), .waveform(_, _, let shape): shape
        }
    }
}

extension ClassifierInput: Codable {
    enum Kind: String, Codable { case equivdSpectrogram = "equivd_spectrogram", logMel = "log_mel", waveform }
    enum CodingKeys: String, CodingKey { case kind, shape, sampleRate = "sample_rate", samples }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(Kind.self, forKey: .kind) {
        case .equivdSpectrogram: self = .equivdSpectrogram
        case .logMel: self = .logMel(try LogMelParameters(from: decoder), shape: try c.decode([Int].self, forKey: .shape))
        case .waveform:
            self = .waveform(
                sampleRate: try c.decode(Int.self, forKey: .sampleRate), samples: try c.decode(Int.self, forKey: .samples),
                shape: try c.decode([Int].self, forKey: .shape))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .equivdSpectrogram: try c.encode(Kind.equivdSpectrogram, forKey: .kind)
        case .logMel(let p, let shape):
            try c.encode(Kind.logMel, forKey: .kind)
            try c.encode(shape, forKey: .shape)
            try p.encode(to: encoder)
        case .waveform(let rate, let samples, let shape):
            try c.encode(Kind.waveform, forKey: .kind)
            try c.encode(rate, forKey: .sampleRate)
            try c.encode(samples, forKey: .samples)
            try c.encode(shape, forKey: .shape)
        }
    }

    /// Checks the fields against each other, naming the first bad one under `field`.
    func validate(field: String) throws(BundleError.Field) {
        switch self {
        case .equivdSpectrogram: return
        case .logMel(let p, let shape):
            do {
                try p.validate()
            } catch {
                guard case .invalidParameter(let name, let reason) = error else { throw .init(name: field, reason: "\(error)") }
                throw .init(name: "\(field).\(name)", reason: reason)
            }
            guard shape.reduce(1, *) == p.frames * p.nMels, shape.allSatisfy({ $0 >= 1 }) else {
                throw .init(name: "\(field).shape", reason: "\(shape) does not hold frames × n_mels = \(p.frames) × \(p.nMels) values")
            }
        case .waveform(let rate, let samples, let shape):
            guard rate >= 1000 else { throw .init(name: "\(field).sample_rate", reason: "must be at least 1000 Hz, got \(rate)") }
            guard samples >= 1 else { throw .init(name: "\(field).samples", reason: "must be at least 1, got \(samples)") }
            guard shape.reduce(1, *) == samples, shape.allSatisfy({ $0 >= 1 }) else {
                throw .init(name: "\(field).shape", reason: "\(shape) does not hold \(samples) samples")
            }
        }
    }
}

/// How the classifier's outputs become the bundle's classes (bundle.json `models.classifier.output`).
/// Without one, output i is class i and the outputs are softmax logits.
public struct OutputMap: Sendable, Equatable, Codable {
    public enum Activation: String, Sendable, Codable {
        /// Mutually exclusive classes: a label's probability is the sum of its outputs' softmax
        /// probabilities, renormalized over the labels.
        case softmax
        /// Independent tags (YAMNet's AudioSet): a label's score is the highest sigmoid among its
        /// outputs; the scores divided by their sum give the published distribution.
        case sigmoid
    }

    public let activation: Activation
    /// Label → the output indices it gathers.
    public let classes: [String: [Int]]

    public init(activation: Activation, classes: [String: [Int]]) {
        self.activation = activation
        self.classes = classes
    }

    /// The identity map of a model made for equivd: output i is `classes[i]`.
    static func identity(_ classes: [String]) -> OutputMap {
        OutputMap(activation: .softmax, classes: Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, [$0]) }))
    }

    /// Checks that every label has outputs below `outputs` and no other labels appear.
    func validate(labels: [String], outputs: Int, field: String) throws(BundleError.Field) {
        for label in labels {
            guard let indices = classes[label], !indices.isEmpty else {
                throw .init(name: "\(field).classes.\(label)", reason: "missing: every class needs at least one output")
            }
            if let bad = indices.first(where: { !(0..<outputs).contains($0) }) {
                throw .init(name: "\(field).classes.\(label)", reason: "output \(bad) is not in 0..<\(outputs)")
            }
        }
        if let extra = classes.keys.sorted().first(where: { !labels.contains($0) }) {
            throw .init(name: "\(field).classes.\(extra)", reason: "is not one of the bundle's classes \(labels)")
        }
    }
}
