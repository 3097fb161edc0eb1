import Foundation

/// Everything that defines the features a model sees. A model bundle records these, and the daemon
/// refuses a bundle whose values differ from its own (docs/architecture.md §4), so every field has a stable name.
public struct FrontEndParameters: Sendable, Equatable, Codable {
    /// Rate every source is converted to before analysis, in Hz.
    public var sampleRate: Int = 16_000
    /// STFT length in samples. 8192 at 16 kHz gives 1.95 Hz per FFT bin, finer than the 1.78 Hz
    /// between the two lowest log bins at 60 Hz, so even the bottom octave is resolved.
    public var fftSize: Int = 8192
    /// Samples between frames (10 ms at 16 kHz).
    public var hopLength: Int = 160
    /// Log-frequency bins per semitone (B in docs/architecture.md §2): a shift of s semitones moves s·B bins.
    public var binsPerSemitone: Int = 2
    /// Centre frequency of bin 0, in Hz.
    public var fmin: Double = 60
    /// Number of log-frequency bins (168 = 7 octaves at B = 2).
    public var binCount: Int = 168
    /// Frames per classifier window (100 frames = 1.0 s).
    public var windowFrames: Int = 100
    /// Frames between the starts of consecutive windows (50 frames = 0.5 s).
    public var windowStepFrames: Int = 50
    /// Added to each band before the natural log, so silence reads ln(1e-6) ≈ −13.8, not −∞.
    public var logFloor: Float = 1e-6

    public init() {}

    /// Centre frequency of log bin `k`: fmin · 2^(k / (12·B)).
    public func centerFrequency(ofBin k: Double) -> Double {
        fmin * pow(2, k / Double(12 * binsPerSemitone))
    }

    /// Upper band edge of the top bin, the highest frequency any bin responds to.
    public var fmax: Double { centerFrequency(ofBin: Double(binCount)) }

    /// Seconds between frames.
    public var frameInterval: Double { Double(hopLength) / Double(sampleRate) }

    /// Samples one window's frames cover, from the first sample of its first frame to the last of
    /// its last.
    public var windowSpanSamples: Int { (windowFrames - 1) * hopLength + fftSize }

    /// Checks that the parameters describe a front end that can run, naming the first bad field.
    public func validate() throws(FrontEndError) {
        try require(sampleRate >= 1000, "sample_rate", "must be at least 1000 Hz, got \(sampleRate)")
        try require(fftSize >= 64 && fftSize % 2 == 0, "fft_size", "must be even and at least 64, got \(fftSize)")
        try require(hopLength >= 1 && hopLength <= fftSize, "hop_length", "must be in 1...fft_size, got \(hopLength)")
        try require(binsPerSemitone >= 1, "bins_per_semitone", "must be at least 1, got \(binsPerSemitone)")
        try require(fmin > 0, "fmin", "must be positive, got \(fmin)")
        try require(binCount >= 1, "bin_count", "must be at least 1, got \(binCount)")
        try require(
            fmax < Double(sampleRate) / 2, "bin_count",
            "top band edge \(fmax) Hz must stay below Nyquist \(sampleRate / 2) Hz")
        try require(windowFrames >= 1, "window_frames", "must be at least 1, got \(windowFrames)")
        try require(
            windowStepFrames >= 1 && windowStepFrames <= windowFrames, "window_step_frames",
            "must be in 1...window_frames, got \(windowStepFrames)")
        try require(logFloor > 0, "log_floor", "must be positive, got \(logFloor)")
    }

    enum CodingKeys: String, CodingKey {
        case sampleRate = "sample_rate"
        case fftSize = "fft_size"
        case hopLength = "hop_length"
        case binsPerSemitone = "bins_per_semitone"
        case fmin
        case binCount = "bin_count"
        case windowFrames = "window_frames"
        case windowStepFrames = "window_step_frames"
        case logFloor = "log_floor"
    }
}

/// Throws `.invalidParameter` naming `field` unless `ok`: the checks of `validate()`.
func require(_ ok: Bool, _ field: String, _ why: @autoclosure () -> String) throws(FrontEndError) {
    if !ok { throw .invalidParameter(field: field, reason: why()) }
}

public enum FrontEndError: Error, Equatable, CustomStringConvertible {
    case invalidParameter(field: String, reason: String)
    case fftPlanFailed(size: Int)

    public var description: String {
        switch self {
        case .invalidParameter(let field, let reason): "front-end parameter '\(field)' \(reason)"
        case .fftPlanFailed(let size): "FFTW could not plan a real FFT of size \(size)"
        }
    }
}
