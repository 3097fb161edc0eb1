import EquivAudio
import EquivCore
import EquivDSP
import Foundation
import Synchronization

/// A spectrogram window on its way from the DSP stage to the inference stage.
public struct AnalysedWindow: Sendable {
    public let seq: Int
    public let values: [Float]
    /// The audio before the window's end that a classifier with its own input reads
    /// (`Recognizer.audioSamplesNeeded`); empty for equivd's own classifier.
    public let audio: [Float]
    /// Window start and end in stream time (FrontEnd's frame-centre convention) and wall time.
    /// Stream time counts audio lost in capture gaps, so it stays the time the sound was made.
    public let streamStart: Double, streamEnd: Double
    public let wallStart: Double, wallEnd: Double
    /// Stream samples the window's frames cover, for clip spooling.
    public let samples: Range<Int>
    /// Where the stretch of unbroken audio the window lies in began: no clip reaches before it.
    public let unbrokenSince: Int
    /// Samples the stream had lost in gaps before this window.
    public let lostBefore: Int
    /// Samples lost since the previous window that reached inference. Set by the inference
    /// stage, so a gap is still reported when the window after it was dropped from the queue.
    public internal(set) var gapBefore = 0
    /// When the block holding the window's last sample arrived.
    public let completedAt: ContinuousClock.Instant
}

/// Source → FrontEnd → canonicalize/classify/decide, on two Dispatch queues joined by a bounded
/// queue (docs/architecture.md §3). The same object runs live capture and file replay; only the source and
/// the overflow policy differ.
///
/// The pipeline is the one owner of the source, the running `Recognition` and the stream's
/// counters; everything else reads them from here.
///
/// The DSP stage reads the source on its own queue and never waits on inference: with
/// `.dropOldest`, a full window queue loses its oldest window (counted). The inference stage takes
/// the current recognizer for each window, so a reload swaps it between two windows and never
/// under one.
///
/// When the source reports lost audio (capture fell behind, the device overran), the stream clock
/// counts the lost samples and the front end starts afresh after them, so no window spans a gap;
/// the next window decided carries the gap's length.
public final class Pipeline: @unchecked Sendable {
    public typealias DecisionHandler = @Sendable (AnalysedWindow, Decision) -> Void

    public let sourceName: String
    public let frontEndParameters: FrontEndParameters

    private let source: AudioSource
    private let frontEnd: FrontEnd
    private let current: Mutex<Recognition>
    private let recorder: ClipRecorder?
    /// The raw audio the current classifier reads beside the spectrogram (`AnalysedWindow.audio`);
    /// sized on the DSP queue to what the recognition serving needs.
    private let classifierAudio = AudioHistory(capacity: 1)
    private let windows: BoundedQueue<AnalysedWindow>
    private var onDecision: DecisionHandler = { _, _ in }  // set by `start`, before the stages run
    private let dspQueue = DispatchQueue(label: "equivd.dsp")
    private let inferenceQueue = DispatchQueue(label: "equivd.inference")
    private let finished = DispatchGroup()

    private let samplesRead = Atomic<Int>(0)
    private let lostSamples = Atomic<Int>(0)
    private let gapCount = Atomic<Int>(0)
    private let windowsDecided = Atomic<Int>(0)
    private var lostAtLastDecision = 0  // only touched on `inferenceQueue`
    private let failure = Mutex<String?>(nil)

    /// `recorder`, when given, is fed every block read (and every gap), for clips.
    public init(
        source: AudioSource, sourceName: String, frontEnd: FrontEnd, recognition: Recognition, recorder: ClipRecorder? = nil,
        windowQueue: Int, dropWhenFull: Bool
    ) {
        self.source = source
        self.sourceName = sourceName
        self.frontEnd = frontEnd
        self.frontEndParameters = frontEnd.parameters
        self.current = Mutex(recognition)
        self.recorder = recorder
        self.windows = BoundedQueue(capacity: windowQueue, overflow: dropWhenFull ? .dropOldest : .wait)
    }

    /// The bundle serving now.
    public var recognition: Recognition { current.withLock { $0 } }

    /// Seconds of audio analysed.
    public var audioSeconds: Double { Double(samplesRead.load(ordering: .relaxed)) / Double(frontEndParameters.sampleRate) }
    public var samplesAnalysed: Int { samplesRead.load(ordering: .relaxed) }
    /// Samples the source lost, and the gaps they fell in.
    public var samplesLost: Int { lostSamples.load(ordering: .relaxed) }
    public var gaps: Int { gapCount.load(ordering: .relaxed) }
    public var decided: Int { windowsDecided.load(ordering: .relaxed) }
    public var queuedWindows: Int { windows.count }
    public var droppedWindows: Int { windows.dropped }
    /// Why the stream ended early (a read error), if it did.
    public var error: String? { failure.withLock { $0 } }
    public var sourceHealth: SourceHealth { source.health }

    /// Ends the stream: the source stops, the windows already read are still decided.
    public func stop() { source.stop() }

    /// Starts both stages, once. `onDecision` runs on the inference queue for each window, in
    /// order; `onEnd` runs there after the last window of a stream that ended (end of file,
    /// stopped source) has been decided.
    public func start(onDecision: @escaping DecisionHandler, onEnd: @escaping @Sendable () -> Void = {}) {
        self.onDecision = onDecision
        finished.enter()
        dspQueue.async { [self] in
            analyse()
            windows.close()
            inferenceQueue.async { [self] in
                drain()
                onEnd()
                finished.leave()
            }
        }
    }

    /// Blocks until the stream has ended and every queued window is decided, or `timeout` passes.
    @discardableResult
    public func wait(timeout: Double = .infinity) -> Bool {
        timeout.isFinite ? finished.wait(timeout: .now() + timeout) == .success : { finished.wait(); return true }()
    }

    /// Uses `recognition` from the next window on. The caller hands it over and must not use
    /// its recognizer afterwards.
    public func replaceRecognition(_ recognition: Recognition) {
        current.withLock { $0 = recognition }
    }

    /// Runs `work` on the inference queue after the window being decided now (if any).
    public func afterCurrentWindow(_ work: @escaping @Sendable () -> Void) {
        inferenceQueue.async(execute: work)
    }

    /// The DSP stage: read, analyse, hand windows on; returns when the source ends.
    private func analyse() {
        let p = frontEndParameters
        let block = UnsafeMutableBufferPointer<Float>.allocate(capacity: p.sampleRate / 10)
        defer { block.deallocate() }
        var total = 0  // stream position past the last sample read, lost ones included
        var lost = 0
        var unbrokenSince = 0  // stream position where the front end's current stretch began
        var seqBase = 0  // windows of the stretches before it
        while true {
            let n: Int
            do {
                n = try source.read(into: block)
            } catch {
                failure.withLock { $0 = "\(error)" }
                return
            }
            guard n > 0 else { return }
            let arrived = ContinuousClock.now
            let wallNow = Date().timeIntervalSince1970
            let lostNow = source.samplesLost  // one look per block: a capture source takes its ring's lock
            let audioNeeded = current.withLock { $0.recognizer.audioSamplesNeeded }
            if audioNeeded > 0 { classifierAudio.reserve(audioNeeded + block.count) }
            if lostNow > lost {
                let gap = lostNow - lost
                lost = lostNow
                total += gap
                recorder?.history.skip(gap)
                classifierAudio.skip(gap)
                seqBase += frontEnd.windowsProduced
                frontEnd.reset()
                unbrokenSince = total
                lostSamples.store(lost, ordering: .relaxed)
                gapCount.add(1, ordering: .relaxed)
            }
            let chunk = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(block)[..<n])
            recorder?.history.append(chunk)
            classifierAudio.append(chunk)  // at capacity 1 while no classifier needs audio: nearly free
            total += n
            samplesRead.store(total - lost, ordering: .relaxed)
            let streamNow = Double(total) / Double(p.sampleRate)
            let offset = Double(unbrokenSince) / Double(p.sampleRate)
            frontEnd.process(chunk) { w in
                let first = unbrokenSince + w.firstFrame * p.hopLength
                let (start, end) = (offset + w.startTime, offset + w.endTime)
                let audio = audioNeeded > 0 ? classifierAudio.samples(audioNeeded, endingAt: first + p.windowSpanSamples) : []
                let item = AnalysedWindow(
                    seq: seqBase + w.index, values: Array(w.values), audio: audio, streamStart: start, streamEnd: end,
                    wallStart: wallNow - (streamNow - start), wallEnd: wallNow - (streamNow - end),
                    samples: first..<(first + p.windowSpanSamples), unbrokenSince: unbrokenSince,
                    lostBefore: lost, completedAt: arrived)
                if windows.push(item) { inferenceQueue.async { [self] in drain() } }
            }
        }
    }

    /// The inference stage: decide every window waiting.
    private func drain() {
        while var item = windows.pop() {
            item.gapBefore = item.lostBefore - lostAtLastDecision
            lostAtLastDecision = item.lostBefore
            let recognizer = current.withLock { $0.recognizer }
            let decision = item.values.withUnsafeBufferPointer { values in
                item.audio.withUnsafeBufferPointer { recognizer.decide(values, audio: $0) }
            }
            windowsDecided.add(1, ordering: .relaxed)
            onDecision(item, decision)
        }
    }
}
