import CALSA
import EquivDSP
import Foundation
import Synchronization

/// Where and how to capture.
public struct ALSACaptureConfiguration: Sendable {
    /// alsa-lib PCM name.
    public var device = "default"
    /// An alsa-lib configuration file in which to look `device` up instead of the system's (and
    /// `~/.asoundrc`); tests use one of their own.
    public var configFile: String? = nil
    /// Rate to ask the device for; whatever it grants is converted to `outputRate`.
    public var sampleRate = 16_000
    /// Rate of the samples the source delivers (the model rate).
    public var outputRate = 16_000
    public var channels = 1
    /// Formats to ask for, most preferred first.
    public var formats: [ALSASampleFormat] = [.floatLE, .s32LE, .s16LE]
    public var periodFrames = 1600
    public var bufferFrames = 6400
    /// Seconds of audio the ring between the capture thread and the reader holds.
    public var ringSeconds = 10.0
    /// Reopen delays after the device disappears: doubling from `initial` up to `maximum` seconds,
    /// so a device that comes back is in use again within about a second.
    public var reconnectBackoff = Backoff(initial: 0.1, maximum: 1)
    /// When the device cannot be opened at start: false fails at once (a wrong name shows up
    /// straight away), true waits for it with `reconnectBackoff`, as for a device lost at run
    /// time (a USB interface often appears after the service starts).
    public var waitForDevice = false
    /// Told from the capture thread as capture is lost, comes back or overruns (the daemon logs
    /// each); the counters in `SourceHealth` say how often.
    public var onEvent: @Sendable (CaptureEvent) -> Void = { _ in }

    public init() {}
}

/// A change in capture, as it happens.
public enum CaptureEvent: Sendable, Equatable {
    /// The device could not be opened, or failed: it is reopened with backoff. Told once per outage.
    case lost(String)
    /// Opened again after `lost`.
    case back
    /// An overrun (or suspend) recovered in place: the audio it lost is a gap.
    case overrun(String)
}

/// Doubling delays between retries, capped, restarting from `initial` after a success.
public struct Backoff: Sendable, Equatable {
    public let initial: Double
    public let maximum: Double
    public private(set) var next: Double

    public init(initial: Double, maximum: Double) {
        self.initial = initial
        self.maximum = maximum
        self.next = initial
    }

    /// The delay to wait now; the one after it is twice as long, up to `maximum`.
    public mutating func take() -> Double {
        defer { next = min(next * 2, maximum) }
        return next
    }

    public mutating func reset() { next = initial }
}

/// What the capture loop does about a failed read, by errno.
public enum CaptureErrorAction: Equatable, Sendable {
    /// Overrun (-EPIPE) or suspend (-ESTRPIPE): `snd_pcm_recover` and count an xrun.
    case recover
    /// Nothing ready yet (-EAGAIN) or interrupted (-EINTR): read again.
    case retry
    /// The device is gone or broken: close, back off, reopen, count a reconnect.
    case reopen

    public init(code: Int32) {
        switch -code {
        case EPIPE, ESTRPIPE: self = .recover
        case EAGAIN, EINTR: self = .retry
        default: self = .reopen  // ENODEV, EBADFD, EIO and anything unexpected
        }
    }
}

/// Live capture from an ALSA device on a dedicated thread into a bounded `SampleRing`.
///
/// The thread converts each period to mono float at `outputRate` and writes it to the ring; it
/// never waits on the reader. Overruns are recovered in place and counted; a device that goes
/// away is reopened with exponential backoff, and the reconnects are counted. The audio lost
/// either way is marked in the ring as a gap, its length estimated from the monotonic clock
/// between the last period delivered and the first one after.
public final class ALSACaptureSource: AudioSource, @unchecked Sendable {
    public let configuration: ALSACaptureConfiguration
    public var sampleRate: Int { configuration.outputRate }
    public let ring: SampleRing

    private let stopRequested = Atomic<Bool>(false)
    private let xrunCount = Atomic<Int>(0)
    private let reconnectCount = Atomic<Int>(0)
    private let nonFiniteCount = Atomic<Int>(0)
    private let state = Mutex<(negotiated: ALSANegotiated?, lastError: String?)>((nil, nil))
    private let finished = DispatchSemaphore(value: 0)

    /// Opens the device once, so a wrong name or configuration fails here and not on the thread
    /// (unless `waitForDevice`: then the thread keeps trying), then starts capturing. The thread
    /// runs until `stop()`, which the owner must call.
    public init(configuration: ALSACaptureConfiguration) throws {
        self.configuration = configuration
        self.ring = SampleRing(capacity: max(1, Int(configuration.ringSeconds * Double(configuration.outputRate))))
        var first: ALSAPCM? = nil
        do {
            first = try openPCM()
        } catch {
            guard configuration.waitForDevice else { throw error }
            state.withLock { $0.lastError = "\(error)" }
            configuration.onEvent(.lost("\(error)"))
        }
        let opened = first
        state.withLock { $0.negotiated = opened?.negotiated }
        let thread = Thread { [self] in captureLoop(first: opened) }
        thread.name = "equivd-capture"
        thread.start()
    }

    /// Overruns recovered since start.
    public var xruns: Int { xrunCount.load(ordering: .relaxed) }
    /// Times the device was reopened after it failed.
    public var reconnects: Int { reconnectCount.load(ordering: .relaxed) }
    /// NaN/Inf samples replaced with 0 (float devices only).
    public var nonFiniteSamples: Int { nonFiniteCount.load(ordering: .relaxed) }
    /// What the device granted at the last (re)open.
    public var negotiated: ALSANegotiated? { state.withLock { $0.negotiated } }
    /// The last error the loop met, kept for status reports.
    public var lastError: String? { state.withLock { $0.lastError } }

    public func read(into buffer: UnsafeMutableBufferPointer<Float>) throws -> Int {
        ring.read(into: buffer)
    }

    public var samplesLost: Int { ring.samplesLost }

    public var health: SourceHealth {
        var h = SourceHealth()
        h.queuedSamples = ring.availableSamples
        h.xruns = xruns
        h.reconnects = reconnects
        h.nonFiniteSamples = nonFiniteSamples
        h.lastError = lastError
        return h
    }

    /// Stops the thread within one wait interval (≤ 100 ms plus a backoff step's check), closes
    /// the device and ends the stream: `read` drains the ring and then returns 0.
    public func stop() {
        guard !stopRequested.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
        ring.close()
    }

    private func openPCM() throws(ALSAError) -> ALSAPCM {
        let c = configuration
        return try ALSAPCM(
            device: c.device, configFile: c.configFile, sampleRate: c.sampleRate, channels: c.channels,
            formats: c.formats, periodFrames: c.periodFrames, bufferFrames: c.bufferFrames)
    }

    private var stopping: Bool { stopRequested.load(ordering: .acquiring) }

    private func captureLoop(first: ALSAPCM?) {
        defer { finished.signal() }
        var pcm: ALSAPCM? = first
        var backoff = configuration.reconnectBackoff
        var converter: PeriodConverter?
        var lastDelivered = ContinuousClock.now
        var interrupted = false  // an overrun or a reopen since `lastDelivered`
        let tell = configuration.onEvent
        /// Records `error` and, at the start of an outage, tells of it.
        func lose(_ error: any Error) {
            state.withLock { $0.lastError = "\(error)" }
            if pcm != nil { tell(.lost("\(error)")) }
            pcm = nil
        }
        if let first {
            do {
                converter = try PeriodConverter(first.negotiated, outputRate: sampleRate)
            } catch {
                lose(error)
            }
        }
        while !stopping {
            guard let open = pcm, let convert = converter else {
                sleepUnlessStopped(seconds: backoff.take())
                if stopping { break }
                do {
                    let reopened = try openPCM()
                    converter = try PeriodConverter(reopened.negotiated, outputRate: sampleRate)
                    pcm = reopened
                    state.withLock { $0.negotiated = reopened.negotiated }
                    reconnectCount.add(1, ordering: .relaxed)
                    backoff.reset()
                    tell(.back)
                } catch {
                    state.withLock { $0.lastError = "\(error)" }
                }
                continue
            }
            do throws(ALSAError) {
                guard try open.wait(timeoutMilliseconds: 100) else { continue }
                let frames = try open.read(into: convert.raw, frames: open.negotiated.periodFrames)
                if interrupted {
                    let elapsed = lastDelivered.duration(to: .now)
                    let arrived = Double(frames) * Double(sampleRate) / Double(open.negotiated.sampleRate)
                    ring.markGap(samples: max(0, Int((elapsed / .seconds(1) * Double(sampleRate) - arrived).rounded())))
                    interrupted = false
                }
                nonFiniteCount.add(convert.deliver(frames: frames, to: ring), ordering: .relaxed)
                lastDelivered = .now
            } catch {
                switch CaptureErrorAction(code: error.code) {
                case .retry:
                    state.withLock { $0.lastError = "\(error)" }
                    continue
                case .recover:
                    xrunCount.add(1, ordering: .relaxed)
                    interrupted = true
                    state.withLock { $0.lastError = "\(error)" }
                    tell(.overrun("\(error)"))
                    do {
                        try open.recover(from: error)
                    } catch {
                        lose(error)
                    }
                case .reopen:
                    interrupted = true
                    lose(error)
                }
            }
        }
    }

    private func sleepUnlessStopped(seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !stopping && Date() < deadline { Thread.sleep(forTimeInterval: min(0.02, seconds)) }
    }
}

/// Turns one period of interleaved device samples into mono float at the output rate.
/// Its buffers are sized once per negotiated configuration.
private final class PeriodConverter {
    let negotiated: ALSANegotiated
    /// Where the device's raw period is read to.
    let raw: UnsafeMutableRawPointer
    private let samples: UnsafeMutableBufferPointer<Float>
    private let resampled: UnsafeMutableBufferPointer<Float>
    private let resampler: Resampler

    init(_ negotiated: ALSANegotiated, outputRate: Int) throws {
        self.negotiated = negotiated
        let count = negotiated.periodFrames * negotiated.channels
        resampler = try Resampler(inputRate: negotiated.sampleRate, outputRate: outputRate)
        raw = .allocate(byteCount: count * negotiated.format.bytesPerSample, alignment: 16)
        samples = .allocate(capacity: count)
        resampled = .allocate(capacity: Int(Double(negotiated.periodFrames) * resampler.ratio) + 64)
    }

    deinit {
        raw.deallocate()
        samples.deallocate()
        resampled.deallocate()
    }

    /// Converts `frames` frames from `raw` and writes them to `ring`; returns NaN/Inf replaced.
    func deliver(frames: Int, to ring: SampleRing) -> Int {
        let count = frames * negotiated.channels
        switch negotiated.format {
        case .s16LE:
            let source = raw.assumingMemoryBound(to: Int16.self)
            for i in 0..<count { samples[i] = Float(Int16(littleEndian: source[i])) / 32_768 }
        case .s32LE:
            let source = raw.assumingMemoryBound(to: Int32.self)
            for i in 0..<count { samples[i] = Float(Int32(littleEndian: source[i])) / 2_147_483_648 }
        case .floatLE:
            let source = raw.assumingMemoryBound(to: UInt32.self)
            for i in 0..<count { samples[i] = Float(bitPattern: UInt32(littleEndian: source[i])) }
        }
        let replaced = zeroNonFinite(samples, count: count)
        let mono = downmixInPlace(samples, frames: frames, channels: negotiated.channels)
        var consumed = 0
        while consumed < mono {
            let input = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(samples)[consumed..<mono])
            guard let step = try? resampler.process(input, endOfInput: false, into: resampled) else { break }
            ring.write(UnsafeBufferPointer(rebasing: UnsafeBufferPointer(resampled)[..<step.produced]))
            consumed += step.consumed
            if step.consumed == 0 && step.produced == 0 { break }
        }
        return replaced
    }
}
