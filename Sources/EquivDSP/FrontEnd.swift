/// One classifier window: `binCount × frameCount` log-band values, row-major (bins outer), the
/// layout the models take and `equivd features` writes.
public struct SpectrogramWindow {
    /// 0 for the first window of the stream.
    public let index: Int
    /// Stream frame index of the window's first column.
    public let firstFrame: Int
    public let binCount: Int
    public let frameCount: Int
    /// Valid only during the callback that receives the window.
    public let values: UnsafeBufferPointer<Float>
    /// Stream time of the first frame's centre and one hop past the last frame's centre, in seconds.
    public let startTime: Double
    public let endTime: Double

    public subscript(bin: Int, frame: Int) -> Float { values[bin * frameCount + frame] }
}

/// Samples in, classifier windows out: the whole feature path of docs/architecture.md §3 for one stream.
///
/// Keeps the last `windowFrames` frames in a ring and emits a window every `windowStepFrames`
/// frames once the first is full. Every buffer is allocated in `init`.
public final class FrontEnd {
    public let parameters: FrontEndParameters
    public let spectrogram: LogFrequencySpectrogram
    /// Windows emitted since `init` or `reset()`.
    public private(set) var windowsProduced = 0

    /// The last `windowFrames` frames, frame-major: slot s holds frame f where f % windowFrames == s.
    private let ring: UnsafeMutableBufferPointer<Float>
    private let window: UnsafeMutableBufferPointer<Float>

    public init(parameters: FrontEndParameters = FrontEndParameters()) throws(FrontEndError) {
        self.parameters = parameters
        self.spectrogram = try LogFrequencySpectrogram(parameters: parameters)
        let size = parameters.binCount * parameters.windowFrames
        self.ring = .allocate(capacity: size)
        self.window = .allocate(capacity: size)
        ring.initialize(repeating: 0)
        window.initialize(repeating: 0)
    }

    deinit {
        ring.deallocate()
        window.deallocate()
    }

    public func reset() {
        spectrogram.reset()
        windowsProduced = 0
    }

    /// Feeds samples at `parameters.sampleRate`; calls `onWindow` for each window completed.
    public func process(
        _ samples: UnsafeBufferPointer<Float>,
        onWindow: (SpectrogramWindow) throws -> Void
    ) rethrows {
        let bins = parameters.binCount
        let width = parameters.windowFrames
        try spectrogram.process(samples) { frame in
            let f = spectrogram.framesProduced  // index of this frame; incremented after the call
            let slot = (f % width) * bins
            for k in 0..<bins { ring[slot + k] = frame[k] }
            let first = f + 1 - width
            if first >= 0 && first % parameters.windowStepFrames == 0 {
                try onWindow(assembleWindow(firstFrame: first))
            }
        }
    }

    private func assembleWindow(firstFrame: Int) -> SpectrogramWindow {
        let p = parameters
        let bins = p.binCount
        let width = p.windowFrames
        for t in 0..<width {
            let slot = ((firstFrame + t) % width) * bins
            for k in 0..<bins { window[k * width + t] = ring[slot + k] }
        }
        let centre = Double(p.fftSize / 2) / Double(p.sampleRate)
        let result = SpectrogramWindow(
            index: windowsProduced, firstFrame: firstFrame, binCount: bins, frameCount: width,
            values: UnsafeBufferPointer(window),
            startTime: Double(firstFrame) * p.frameInterval + centre,
            endTime: Double(firstFrame + width) * p.frameInterval + centre)
        windowsProduced += 1
        return result
    }
}
