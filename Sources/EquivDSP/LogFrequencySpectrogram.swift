import Foundation

/// Streaming Hann-windowed STFT followed by the log-frequency filterbank and a log.
///
/// Frame t covers samples [t·hop, t·hop + fftSize) of the stream; its value in band k is
/// ln(filterbank_k(|FFT(hann · x)|) + logFloor). Samples can arrive in blocks of any size; every
/// buffer is allocated in `init`, so `process` allocates nothing.
public final class LogFrequencySpectrogram {
    public let parameters: FrontEndParameters
    public let filterbank: LogFrequencyFilterbank
    /// Frames emitted since `init` or `reset()`.
    public private(set) var framesProduced = 0

    private let fft: RealFFT
    private let window: [Float]
    /// The last fftSize samples, stored twice (at i and i + fftSize) so that the newest fftSize
    /// samples are always one contiguous run starting at `writeIndex`: no copying per frame.
    private let history: UnsafeMutableBufferPointer<Float>
    private var writeIndex = 0
    /// Samples still to arrive before the next frame: fftSize for the first, hop after that.
    private var untilFrame: Int
    private let magnitudes: UnsafeMutableBufferPointer<Float>
    private let frame: UnsafeMutableBufferPointer<Float>

    public init(parameters: FrontEndParameters) throws(FrontEndError) {
        try parameters.validate()
        self.parameters = parameters
        let n = parameters.fftSize
        // Periodic Hann, as scipy.signal.get_window("hann", n) defines it.
        self.window = (0..<n).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n))) }
        self.fft = try RealFFT(size: n)
        self.filterbank = LogFrequencyFilterbank(parameters: parameters, window: window, fft: fft)
        self.history = .allocate(capacity: 2 * n)
        self.untilFrame = n
        self.magnitudes = .allocate(capacity: filterbank.magnitudeCount)
        self.frame = .allocate(capacity: parameters.binCount)
        history.initialize(repeating: 0)
        magnitudes.initialize(repeating: 0)
        frame.initialize(repeating: 0)
    }

    deinit {
        history.deallocate()
        magnitudes.deallocate()
        frame.deallocate()
    }

    /// Forgets buffered samples, so the next frame starts at the next sample given.
    public func reset() {
        writeIndex = 0
        untilFrame = parameters.fftSize
        framesProduced = 0
    }

    /// Feeds samples; calls `onFrame` with the `binCount` band values of each frame completed.
    /// The buffer passed to `onFrame` is reused: copy what must outlive the call.
    public func process(
        _ samples: UnsafeBufferPointer<Float>,
        onFrame: (UnsafeBufferPointer<Float>) throws -> Void
    ) rethrows {
        let n = parameters.fftSize
        let base = history.baseAddress!
        var consumed = 0
        while consumed < samples.count {
            let run = min(untilFrame, samples.count - consumed, n - writeIndex)
            let source = samples.baseAddress! + consumed
            (base + writeIndex).update(from: source, count: run)
            (base + writeIndex + n).update(from: source, count: run)
            writeIndex = (writeIndex + run) % n
            untilFrame -= run
            consumed += run
            if untilFrame == 0 {
                computeFrame()
                try onFrame(UnsafeBufferPointer(frame))
                framesProduced += 1
                untilFrame = parameters.hopLength
            }
        }
    }

    private func computeFrame() {
        let n = parameters.fftSize
        let oldest = history.baseAddress! + writeIndex  // the last n samples run from here
        window.withUnsafeBufferPointer { w in
            for i in 0..<n { fft.input[i] = oldest[i] * w[i] }
        }
        fft.execute()
        fft.magnitudes(bins: filterbank.fftBinRange, into: magnitudes)
        filterbank.apply(magnitudes: UnsafeBufferPointer(magnitudes), into: frame)
        let floor = parameters.logFloor
        for k in 0..<frame.count { frame[k] = log(frame[k] + floor) }
    }
}
