import CSampleRate

public struct ResamplerError: Error, CustomStringConvertible {
    /// libsamplerate's error number.
    public let code: Int32
    public var description: String { "libsamplerate: \(String(cString: src_strerror(code)))" }
}

/// Streaming mono sample-rate converter on libsamplerate at its best quality (SRC_SINC_BEST_QUALITY).
///
/// Equal rates pass samples through untouched: libsamplerate's filter is not an identity at ratio 1.
public final class Resampler {
    /// Output samples per input sample.
    public let ratio: Double
    private let state: OpaquePointer?

    /// A converter from `inputRate` to `outputRate` Hz.
    public convenience init(inputRate: Int, outputRate: Int) throws(ResamplerError) {
        try self.init(ratio: Double(outputRate) / Double(inputRate))
    }

    /// A converter producing `ratio` output samples per input sample (libsamplerate takes 1/256…256).
    public init(ratio: Double) throws(ResamplerError) {
        self.ratio = ratio
        if ratio == 1 {
            state = nil
            return
        }
        guard src_is_valid_ratio(ratio) != 0 else { throw ResamplerError(code: 6) }  // SRC_ERR_BAD_SRC_RATIO
        var error: Int32 = 0
        guard let state = src_new(Int32(SRC_SINC_BEST_QUALITY), 1, &error) else {
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
}
