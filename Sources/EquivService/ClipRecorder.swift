import EquivCore
import EquivDSP
import EquivView
import Foundation
import Synchronization

/// The clips of abstained windows: the one owner of the audio history they are cut from and of
/// the spool they go to. The pipeline's DSP stage feeds it every block (and every gap); the
/// inference stage asks it for a window's clip. A reload may point it at another spool.
public final class ClipRecorder: Sendable {
    let history: AudioHistory
    private let sampleRate: Int
    /// Seconds the history keeps beside the context: a window's span and every window the
    /// inference queue may hold (fixed at start, as `[pipeline]` is).
    private let beyondContext: Double
    private let spool: Mutex<(spool: ClipSpool?, contextSeconds: Double)>
    private let written = Atomic<Int>(0)

    /// Keeps enough audio for `configuration`'s context, a window's span, and every window the
    /// inference queue may hold, so a clip is still there when inference falls behind as far as
    /// it can.
    init(configuration c: ServiceConfiguration, frontEnd p: FrontEndParameters) throws(ConfigurationError) {
        sampleRate = p.sampleRate
        let span = Double(p.windowSpanSamples) / Double(p.sampleRate)
        let queued = Double(c.pipeline.windowQueue + 1) * Double(p.windowStepFrames * p.hopLength) / Double(p.sampleRate)
        beyondContext = span + queued + 1
        history = AudioHistory(capacity: Int((c.spool.contextSeconds + beyondContext) * Double(p.sampleRate)))
        spool = Mutex((try Self.spool(c.spool), c.spool.contextSeconds))
    }

    /// Uses `configuration`'s spool from the next clip on; a longer context grows the history
    /// first (a clip asked for before it has filled starts where the kept audio does).
    func replace(with configuration: ServiceConfiguration.Spool) throws(ConfigurationError) {
        let fresh = try Self.spool(configuration)
        history.reserve(Int((configuration.contextSeconds + beyondContext) * Double(sampleRate)))
        spool.withLock { $0 = (fresh, configuration.contextSeconds) }
    }

    /// Clips written since start, reloads included.
    var clips: Int { written.load(ordering: .relaxed) }

    /// Writes `window` with the configured context before it (never reaching back past a gap),
    /// and the page of what `inspect` (called only when spooling is on) shows of it, and returns
    /// the clip's path; nil when spooling is off.
    func clip(for window: AnalysedWindow, source: String, frontEnd: FrontEndParameters, inspect: () -> Inspection) throws(ClipError) -> String? {
        let (spool, context) = spool.withLock { ($0.spool, $0.contextSeconds) }
        guard let spool else { return nil }
        // The context stops where the kept audio starts (just after a reload grew it); the window never does.
        let start = max(
            window.unbrokenSince, window.samples.lowerBound - Int(context * Double(sampleRate)),
            min(history.oldest, window.samples.lowerBound))
        guard let samples = history.copy(start..<window.samples.upperBound) else {
            throw ClipError(message: "window \(window.seq): its audio is no longer kept")
        }
        let view = InspectView(
            inspection: inspect(), source: source, seq: window.seq, startTime: window.streamStart, endTime: window.streamEnd,
            frontEnd: frontEnd)
        do {
            let page = HTML.document(title: "equivd clip: window \(window.seq) of \(source)", body: try view.html())
            let path = try spool.write(samples, sampleRate: sampleRate, seq: window.seq, wallTime: window.wallStart, page: page)
            written.add(1, ordering: .relaxed)
            return path
        } catch {
            throw ClipError(message: "\(error)")
        }
    }

    private static func spool(_ c: ServiceConfiguration.Spool) throws(ConfigurationError) -> ClipSpool? {
        c.directory.isEmpty ? nil : try ClipSpool(directory: c.directory, quotaBytes: c.quotaBytes)
    }
}

/// Why a clip was not written (published as a `clip_failed` error).
struct ClipError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
