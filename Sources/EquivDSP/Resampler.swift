import CSampleRate

public struct ResamplerError: Error, CustomStringConvertible {
    /// libsamplerate's error number.
    public let code: Int32
    public var description: String { "libsamplerate: \(String(cString: src_strerror(code)))" }
}

/// Mono sample-rate converter on libsamplerate: streaming (`process`), or one block at a time
/// from a fresh start (`convert`).
///
/// Equal rates pass samples through untouched: libsamplerate's filter is not an identity at ratio 1.
public final class Resampler {
    /// libsamplerate's sinc converters: all keep aliasing 97 dB down; they differ in passband
    /// (97, 90 and 80 % of the lower Nyquist) and cost (about 6, 2 and 1 ms per second of output
    /// here, docs/benchmarks.md).
    public enum Quality: Sendable {
        case best, medium, fastest

        var converter: Int32 {
            switch self {
            case .best: Int32(SRC_SINC_BEST_QUALITY)
            case .medium: Int32(SRC_SINC_MEDIUM_QUALITY)
            case .fastest: Int32(SRC_SINC_FASTEST)
            }
        }
    }

    /// Output samples per input sample.
    public let ratio: Double
    private let state: OpaquePointer?

    /// A converter from `inputRate` to `outputRate` Hz.
    public convenience init(inputRate: Int, outputRate: Int) throws(ResamplerError) {
        try self.init(ratio: Double(outputRate) / Double(inputRate))
    }

    /// A converter producing `ratio` output samples per input sample (libsamplerate takes 1/256…256).
    public init(ratio: Double, quality: Quality = .best) throws(ResamplerError) {
        self.ratio = ratio
        if ratio == 1 {
            state = nil
            return
        }
        guard src_is_valid_ratio(ratio) != 0 else { throw ResamplerError(code: 6) }  // SRC_ERR_BAD_SRC_RATIO
        var error: Int32 = 0
        guard let state = src_new(quality.converter, 1, &error) else {
            throw ResamplerError(code: error)
        }
        self.state = state
    }

    deinit {
        if let state { src_delete(state) }
    }

    /// Converts as much of `input` as fits into `output`. Pass `endOfInput` once the stream has
    /// ended and call again until nothing more is produced, to drain the filter's tail.
    public func process(
        _ input: UnsafeBufferPointer<Float>, endOfInput: Bool,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws(ResamplerError) -> (consumed: Int, produced: Int) {
        guard let state else {
            let n = min(input.count, output.count)
            if n > 0 { output.baseAddress!.update(from: input.baseAddress!, count: n) }
            return (n, n)
        }
        var data = SRC_DATA(
            data_in: input.baseAddress, data_out: output.baseAddress,
            input_frames: input.count, output_frames: output.count,
            input_frames_used: 0, output_frames_gen: 0,
            end_of_input: endOfInput ? 1 : 0, src_ratio: ratio)
        let rc = src_process(state, &data)
        guard rc == 0 else { throw ResamplerError(code: rc) }
        return (data.input_frames_used, data.output_frames_gen)
    }

    /// Converts all of `input` as one block from a fresh filter state, filling `output` as far as
    /// the input reaches; returns the samples written (the rest of `output` is left as it was).
    public func convert(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>
    ) throws(ResamplerError) -> Int {
        if let state {
            let rc = src_reset(state)
            guard rc == 0 else { throw ResamplerError(code: rc) }
        }
        var consumed = 0, produced = 0
        while produced < output.count {
            let step = try process(
                UnsafeBufferPointer(rebasing: input[consumed...]), endOfInput: true,
                into: UnsafeMutableBufferPointer(rebasing: output[produced...]))
            consumed += step.consumed
            produced += step.produced
            if step.produced == 0 { break }
        }
        return produced
    }
}
