import CDirectConv

/// One block resampled by a fixed ratio, from a fresh start each time: CDirectConv's Kaiser-windowed
/// sinc (cutoff 0.9 of the lower Nyquist frequency, flat to 1e-4 up to 0.75 of it, −90 dB above
/// 1.3 of it; `Tests/CDirectConv/sinc_reference_test.c`). For canonicalizing a window, where
/// libsamplerate's streaming converters cost 40–120 % of a classifier call (docs/benchmarks.md);
/// streams go through `Resampler`.
///
/// Owns its filter table and scratch, made in `init`; `convert` allocates nothing. Not thread-safe.
public final class SincResampler {
    /// Output samples per input sample.
    public let ratio: Double
    public let maximumInput: Int
    private let table: UnsafeMutableBufferPointer<Float>
    private let scratch: UnsafeMutableBufferPointer<Float>

    /// A resampler for blocks of up to `maximumInput` samples; `ratio` in 1/8…8.
    public init(ratio: Double, maximumInput: Int) {
        precondition(ratio >= 0.125 && ratio <= 8, "sinc resampling ratio \(ratio) is outside 1/8...8")
        self.ratio = ratio
        self.maximumInput = maximumInput
        table = .allocate(capacity: ratio == 1 ? 0 : equivd_sinc_table_count(ratio))
        scratch = .allocate(capacity: ratio == 1 ? 0 : equivd_sinc_scratch(ratio, maximumInput))
        if ratio != 1 { equivd_sinc_table(ratio, table.baseAddress) }
    }

    deinit {
        table.deallocate()
        scratch.deallocate()
    }

    /// Input samples the filter reads on each side of a position: give that much context around
    /// the span converted, or its ends read silence.
    public var halfWidth: Int { Self.halfWidth(ratio: ratio) }

    public static func halfWidth(ratio: Double) -> Int { ratio == 1 ? 0 : equivd_sinc_half_width(ratio) }

    /// Fills all of `output`: output n is `input` at position `start` + n / ratio (silence past
    /// its ends). Ratio 1 copies from `start`, a whole number then.
    public func convert(_ input: UnsafeBufferPointer<Float>, from start: Int, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(input.count <= maximumInput, "block of \(input.count) samples, at most \(maximumInput)")
        guard ratio != 1 else {
            let n = max(0, min(input.count - start, output.count))
            output.baseAddress!.update(from: input.baseAddress! + start, count: n)
            (output.baseAddress! + n).update(repeating: 0, count: output.count - n)
            return
        }
        equivd_sinc_resample(
            ratio, table.baseAddress, input.baseAddress, input.count, Double(start), output.baseAddress, output.count,
            scratch.baseAddress)
    }
}
