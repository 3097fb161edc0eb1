/// A stream of mono samples at one rate: the live microphone and a replayed file look the same to
/// everything downstream (docs/architecture.md §3).
public protocol AudioSource: AnyObject {
    /// Rate of the samples `read(into:)` returns, in Hz.
    var sampleRate: Int { get }
    /// Fills the start of `buffer` with the next samples and returns how many; 0 means the stream
    /// has ended. May return fewer than `buffer.count` before the end.
    func read(into buffer: UnsafeMutableBufferPointer<Float>) throws -> Int
    /// Samples of the stream lost before the ones the last `read` returned (capture fell behind,
    /// or the device overran); only ever grows. A read never returns samples from both sides of
    /// a loss, so a reader that sees this grow knows the block it just got starts after a gap.
    var samplesLost: Int { get }
    /// How capture is going; all zero for a file.
    var health: SourceHealth { get }
    /// Ends the stream: `read` returns what is left, then 0. A source that ends by itself
    /// (a file played once) need not be stopped.
    func stop()
}

/// What a live source reports beyond its samples, for `status`.
public struct SourceHealth: Sendable, Equatable {
    /// Samples captured and not yet read.
    public var queuedSamples = 0
    /// Overruns recovered, and reopens after the device failed.
    public var xruns = 0
    public var reconnects = 0
    /// NaN/Inf samples a float device delivered, replaced with 0.
    public var nonFiniteSamples = 0
    /// The last error capture met.
    public var lastError: String? = nil

    public init() {}
}

extension AudioSource {
    /// A file loses nothing, has no capture to report and ends by itself.
    public var samplesLost: Int { 0 }
    public var health: SourceHealth { SourceHealth() }
    public func stop() {}
}

/// Averages interleaved frames of `channels` samples into mono, in place; returns the frame count.
func downmixInPlace(_ samples: UnsafeMutableBufferPointer<Float>, frames: Int, channels: Int) -> Int {
    guard channels > 1 else { return frames }
    let scale = 1 / Float(channels)
    for f in 0..<frames {
        var sum: Float = 0
        for c in 0..<channels { sum += samples[f * channels + c] }
        samples[f] = sum * scale
    }
    return frames
}

/// Replaces NaN and ±Inf with 0 and returns how many were replaced.
func zeroNonFinite(_ samples: UnsafeMutableBufferPointer<Float>, count: Int) -> Int {
    var replaced = 0
    for i in 0..<count where !samples[i].isFinite {
        samples[i] = 0
        replaced += 1
    }
    return replaced
}
