import Foundation

/// The log-mel features a pretrained model was trained on, in the terms of
/// `torchaudio.transforms.MelSpectrogram` (and librosa's `melspectrogram`), then a log:
/// `log(mel + logOffset)`. bundle.json's `models.classifier.input` (kind `log_mel`) holds them
/// under the snake_case names below.
public struct LogMelParameters: Sendable, Equatable, Codable {
    public enum MelScale: String, Sendable, Codable { case htk, slaney }
    public enum Norm: String, Sendable, Codable { case none, slaney }
    public enum Log: String, Sendable, Codable { case ln, log10 }
    /// How one patch is laid out in memory: `frames_mels` is [frames][mels] (YAMNet), `mels_frames`
    /// is [mels][frames].
    public enum Layout: String, Sendable, Codable {
        case framesMels = "frames_mels", melsFrames = "mels_frames"
    }

    public var sampleRate: Int
    public var nFFT: Int
    /// Hann window length (periodic, as `torch.hann_window`), centred in the `nFFT` frame.
    public var winLength: Int
    public var hopLength: Int
    public var nMels: Int
    public var fMin: Double
    public var fMax: Double
    public var melScale: MelScale
    public var norm: Norm
    /// 1: magnitude, 2: power.
    public var power: Double
    /// true: frame t is centred on sample t·hop, the audio reflected at both ends (torchaudio's
    /// default); false: frame t starts at sample t·hop.
    public var center: Bool
    public var logOffset: Double
    public var log: Log
    /// Frames in one patch the model takes.
    public var frames: Int
    public var layout: Layout

    public init(
        sampleRate: Int, nFFT: Int, winLength: Int, hopLength: Int, nMels: Int, fMin: Double, fMax: Double,
        melScale: MelScale, norm: Norm, power: Double, center: Bool, logOffset: Double, log: Log, frames: Int,
        layout: Layout
    ) {
        (self.sampleRate, self.nFFT, self.winLength, self.hopLength) = (sampleRate, nFFT, winLength, hopLength)
        (self.nMels, self.fMin, self.fMax, self.melScale, self.norm) = (nMels, fMin, fMax, melScale, norm)
        (self.power, self.center, self.logOffset, self.log) = (power, center, logOffset, log)
        (self.frames, self.layout) = (frames, layout)
    }

    /// Audio samples one patch is computed from.
    public var patchSamples: Int { (frames - 1) * hopLength + (center ? 1 : nFFT) }

    /// Checks that the parameters can run, naming the first bad field.
    public func validate() throws(FrontEndError) {
        try require(sampleRate >= 1000, "sample_rate", "must be at least 1000 Hz, got \(sampleRate)")
        try require(nFFT >= 16 && nFFT % 2 == 0, "n_fft", "must be even and at least 16, got \(nFFT)")
        try require(winLength >= 2 && winLength <= nFFT, "win_length", "must be in 2...n_fft, got \(winLength)")
        try require(hopLength >= 1, "hop_length", "must be at least 1, got \(hopLength)")
        try require(nMels >= 1 && nMels <= nFFT / 2 + 1, "n_mels", "must be in 1...n_fft/2+1, got \(nMels)")
        try require(fMin >= 0, "f_min", "must not be negative, got \(fMin)")
        try require(fMax > fMin && fMax <= Double(sampleRate) / 2, "f_max", "must be in (f_min, sample_rate/2], got \(fMax)")
        try require(power > 0, "power", "must be positive, got \(power)")
        try require(logOffset > 0, "log_offset", "must be positive, got \(logOffset)")
        try require(frames >= 1, "frames", "must be at least 1, got \(frames)")
        try require(!center || patchSamples > nFFT / 2, "center", "reflection needs more than n_fft/2 samples a patch")
    }

    enum CodingKeys: String, CodingKey {
        case sampleRate = "sample_rate", nFFT = "n_fft", winLength = "win_length", hopLength = "hop_length"
        case nMels = "n_mels", fMin = "f_min", fMax = "f_max", melScale = "mel_scale", norm, power, center
        case logOffset = "log_offset", log, frames, layout
    }
}

/// One log-mel patch from `patchSamples` samples, as the model's own front end computes it.
/// Buffers and the FFT plan are made in `init`; `compute` allocates nothing. Not thread-safe.
public final class LogMelSpectrogram {
    public let parameters: LogMelParameters
    private let fft: RealFFT
    /// The Hann window placed in an `nFFT` frame, zero outside it.
    private let window: [Float]
    /// Mel band m takes FFT bins `firstBin[m] ..< firstBin[m] + weights[m].count`.
    private let firstBin: [Int]
    private let weights: [[Float]]
    private let spectrum: UnsafeMutableBufferPointer<Float>

    public init(parameters p: LogMelParameters) throws(FrontEndError) {
        try p.validate()
        parameters = p
        fft = try RealFFT(size: p.nFFT)
        let left = (p.nFFT - p.winLength) / 2  // torch.stft pads a shorter window on both sides
        window = (0..<p.nFFT).map { i in
            let n = i - left
            guard n >= 0 && n < p.winLength else { return 0 }
            return Float(0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(p.winLength)))
        }
        (firstBin, weights) = Self.filterbank(p)
        spectrum = .allocate(capacity: p.nFFT / 2 + 1)
        spectrum.initialize(repeating: 0)
    }

    deinit { spectrum.deallocate() }

    /// Writes one patch (`frames × nMels` values in `layout`) computed from `audio`, which holds
    /// exactly `patchSamples` samples at `sampleRate`.
    public func compute(_ audio: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>) {
        let p = parameters
        precondition(audio.count == p.patchSamples, "log-mel patch needs \(p.patchSamples) samples, got \(audio.count)")
        precondition(out.count == p.frames * p.nMels, "log-mel patch has \(p.frames * p.nMels) values, got \(out.count)")
        let shift = p.center ? p.nFFT / 2 : 0
        let last = audio.count - 1
        let halfPower = Float(p.power / 2)
        for t in 0..<p.frames {
            for i in 0..<p.nFFT {
                var j = t * p.hopLength + i - shift
                if j < 0 { j = -j } else if j > last { j = 2 * last - j }  // reflect, as torch pads
                fft.input[i] = audio[j] * window[i]
            }
            fft.execute()
            for k in 0...(p.nFFT / 2) {
                let (re, im) = (fft.output[2 * k], fft.output[2 * k + 1])
                let squared = re * re + im * im
                spectrum[k] = halfPower == 1 ? squared : pow(squared, halfPower)
            }
            for m in 0..<p.nMels {
                var sum: Float = 0
                for (w, k) in zip(weights[m], firstBin[m]...) { sum += w * spectrum[k] }
                let value = Float(p.log == .ln ? Foundation.log(Double(sum) + p.logOffset) : log10(Double(sum) + p.logOffset))
                out[p.layout == .framesMels ? t * p.nMels + m : m * p.frames + t] = value
            }
        }
    }

    /// Triangular mel filters over the `nFFT/2 + 1` FFT bins, as `torchaudio.functional.melscale_fbanks`
    /// and `librosa.filters.mel` define them (librosa's `htk=True` is `mel_scale: htk`).
    static func filterbank(_ p: LogMelParameters) -> ([Int], [[Float]]) {
        func toMel(_ f: Double) -> Double {
            switch p.melScale {
            case .htk: return 2595 * log10(1 + f / 700)
            case .slaney: return f < 1000 ? 3 * f / 200 : 15 + Foundation.log(f / 1000) / (Foundation.log(6.4) / 27)
            }
        }
        func toHz(_ m: Double) -> Double {
            switch p.melScale {
            case .htk: return 700 * (pow(10, m / 2595) - 1)
            case .slaney: return m < 15 ? 200 * m / 3 : 1000 * exp((Foundation.log(6.4) / 27) * (m - 15))
            }
        }
        let bins = p.nFFT / 2 + 1
        // torchaudio spaces the bins from 0 to sample_rate // 2 (integer division).
        let nyquist = Double(p.sampleRate / 2)
        let binHz = (0..<bins).map { nyquist * Double($0) / Double(bins - 1) }
        let (low, high) = (toMel(p.fMin), toMel(p.fMax))
        let edges = (0..<(p.nMels + 2)).map { toHz(low + (high - low) * Double($0) / Double(p.nMels + 1)) }
        var firstBin: [Int] = [], weights: [[Float]] = []
        for m in 0..<p.nMels {
            let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2])
            let scale = p.norm == .slaney ? 2 / (right - left) : 1
            let w = binHz.map { f in max(0, min((f - left) / (centre - left), (right - f) / (right - centre))) * scale }
            let first = w.firstIndex { $0 > 0 } ?? 0
            let end = (w.lastIndex { $0 > 0 } ?? -1) + 1
            firstBin.append(first)
            weights.append(end > first ? w[first..<end].map(Float.init) : [])
        }
        return (firstBin, weights)
    }
}
