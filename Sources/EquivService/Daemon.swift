import EquivAudio
import EquivCore
import EquivDSP
import EquivProtocol
import Foundation
import Synchronization

/// `equivd run`: source → pipeline → event socket, under systemd's notify protocol.
///
/// Lifecycle (docs/architecture.md §3): READY=1 once the socket and the source are up; WATCHDOG=1
/// only while the pipeline makes progress; SIGHUP reloads config and bundle atomically (validated
/// first, the old one kept on failure); SIGTERM/SIGINT stop capture, drain, flush clients, remove
/// the socket and return. A file source that ends (without `loop`) ends the run the same way.
public final class Daemon: @unchecked Sendable {
    /// Re-reads the configuration on reload: the file again, with the command line's overrides.
    public typealias ConfigurationLoader = @Sendable () throws(ConfigurationError) -> ServiceConfiguration

    private let loadConfiguration: ConfigurationLoader
    private let notifier: SystemdNotifier
    private let control = DispatchQueue(label: "equivd.control")
    private let stopped = DispatchSemaphore(value: 0)
    private let started = ContinuousClock.now

    private struct State: Sendable {
        var configuration: ServiceConfiguration
        var recognition: Recognition
        var spool: ClipSpool?
        var lastError: String?
    }
    private let state: Mutex<State>
    private let frontEndParameters: FrontEndParameters
    private var source: (any AudioSource)!
    private var server: EventServer!
    private var pipeline: Pipeline!
    private var signalSources: [DispatchSourceSignal] = []
    private var watchdog: DispatchSourceTimer?
    private var statusLine: DispatchSourceTimer?

    /// Loads the configuration and the bundle; nothing is opened yet.
    public init(loadConfiguration: @escaping ConfigurationLoader, notifier: SystemdNotifier = SystemdNotifier()) throws {
        self.loadConfiguration = loadConfiguration
        self.notifier = notifier
        let configuration = try loadConfiguration()
        frontEndParameters = FrontEndParameters()
        let recognition = try Recognition(configuration: configuration.model, frontEnd: frontEndParameters)
        let spool = try configuration.spool.directory.isEmpty
            ? nil : ClipSpool(directory: configuration.spool.directory, quotaBytes: configuration.spool.quotaBytes)
        state = Mutex(State(configuration: configuration, recognition: recognition, spool: spool))
    }

    /// Serves until SIGTERM/SIGINT (or the end of a file source); returns once everything is
    /// closed and the socket file is gone. Returns false when inference was still inside a model
    /// call (stuck) at the stop: the process must then end with `_exit`, since the destructors
    /// `exit` runs (OpenBLAS frees its buffers) would pull memory from under that call.
    public func run() throws -> Bool {
        let (configuration, recognition) = state.withLock { ($0.configuration, $0.recognition) }
        let c = configuration.source
        let sourceName: String
        switch c.kind {
        case .alsa:
            var alsa = ALSACaptureConfiguration()
            alsa.device = c.device
            alsa.configFile = c.alsaConfig.isEmpty ? nil : c.alsaConfig
            alsa.sampleRate = c.sampleRate
            alsa.outputRate = frontEndParameters.sampleRate
            alsa.channels = c.channels
            if let format = ALSASampleFormat(rawValue: c.format) { alsa.formats = [format] }
            alsa.periodFrames = c.periodFrames
            alsa.bufferFrames = c.bufferFrames
            alsa.ringSeconds = c.ringSeconds
            source = try ALSACaptureSource(configuration: alsa)
            sourceName = c.device
        case .file:
            source = try FileStreamSource(
                path: c.file, sampleRate: frontEndParameters.sampleRate, realTime: c.pace == .realtime, speed: c.speed,
                loop: c.loop)
            sourceName = c.file
        }

        // Built before the server starts, since the server's status timer reads its counters.
        pipeline = Pipeline(
            source: source, sourceName: sourceName, frontEnd: try FrontEnd(parameters: frontEndParameters),
            recognizer: recognition.recognizer, windowQueue: configuration.pipeline.windowQueue,
            dropWhenFull: c.kind == .alsa || c.pace == .realtime,
            historySeconds: Self.historySeconds(configuration, frontEndParameters),
            onDecision: { [self] window, decision in publish(window, decision, source: sourceName) })

        let s = configuration.socket
        server = EventServer(
            settings: .init(
                path: s.path, mode: configuration.socketMode!, group: try Self.groupID(s.group),
                maxRequestBytes: s.maxRequestBytes, clientBufferEvents: s.clientBufferEvents,
                dropLimit: s.clientDropLimit, sendBufferBytes: s.sendBufferBytes, statusInterval: s.statusInterval),
            callbacks: .init(
                hello: { [self] in EventProtocol.line(state.withLock { $0.recognition }.hello(source: sourceName)) },
                status: { [self] clients, disconnected in EventProtocol.line(status(clients: clients, disconnected: disconnected)) },
                reload: { [self] reply in control.async { reply(EventProtocol.line(self.reload())) } }))
        do {
            try server.start()
        } catch {
            stopSource()
            throw error
        }

        pipeline.start { [self] in stopped.signal() }

        installSignalHandlers()
        startWatchdog()
        startStatusLine(every: s.statusInterval)
        notifier.notify("READY=1\nSTATUS=serving \(sourceName) on \(s.path)\nMAINPID=\(getpid())")

        stopped.wait()
        return shutdown()
    }

    // MARK: Events

    private func publish(_ window: AnalysedWindow, _ decision: Decision, source: String) {
        var clip: String?
        if decision.fallback == .abstain {
            clip = spoolClip(window)
        }
        server.publish(EventProtocol.line(PredictionEvent(
            window: window, decision: decision, source: source, sampleRate: frontEndParameters.sampleRate, clip: clip)))
    }

    /// Writes an abstained window with `spool.context_seconds` before it; a failure (disk full,
    /// audio no longer kept) is published as an `error` and the prediction goes out without a clip.
    private func spoolClip(_ window: AnalysedWindow) -> String? {
        let (spool, context) = state.withLock { ($0.spool, $0.configuration.spool.contextSeconds) }
        guard let spool else { return nil }
        let rate = frontEndParameters.sampleRate
        let start = max(window.unbrokenSince, window.samples.lowerBound - Int(context * Double(rate)))
        guard let samples = pipeline.history.copy(start..<window.samples.upperBound) else {
            report(ErrorEvent(code: "clip_failed", message: "window \(window.seq): its audio is no longer kept"))
            return nil
        }
        do {
            return try spool.write(samples, sampleRate: rate, seq: window.seq, wallTime: window.wallStart)
        } catch {
            report(ErrorEvent(code: "clip_failed", message: "\(error)"))
            return nil
        }
    }

    private func report(_ event: ErrorEvent) {
        state.withLock { $0.lastError = event.message }
        server.publish(EventProtocol.line(event))
    }

    private func status(clients: [StatusEvent.Client], disconnected: Int) -> StatusEvent {
        let uptime = started.duration(to: .now) / .seconds(1)
        let (ids, clips, lastError) = state.withLock { ($0.recognition.modelIDs, $0.spool?.written ?? 0, $0.lastError) }
        let capture = source as? ALSACaptureSource
        return StatusEvent(
            uptimeSeconds: uptime, realTimeFactor: pipeline.audioSeconds / max(uptime, 1e-9),
            audioSeconds: pipeline.audioSeconds, windows: pipeline.decided,
            queuedSamples: capture?.ring.availableSamples ?? 0, queuedWindows: pipeline.queuedWindows,
            droppedSamples: pipeline.samplesLost, gaps: pipeline.gaps, droppedWindows: pipeline.droppedWindows,
            xruns: capture?.xruns ?? 0, reconnects: capture?.reconnects ?? 0, clients: clients,
            clientsDisconnected: disconnected, models: ids, clips: clips,
            lastError: lastError ?? capture?.lastError ?? pipeline.error)
    }

    // MARK: Lifecycle

    /// Validates the new configuration and bundle completely before swapping anything; on failure
    /// the running ones stay and everyone gets an `error`. Runs on `control`.
    private func reload() -> ReloadEvent {
        notifier.notify("RELOADING=1\nSTATUS=reloading")
        defer { notifier.notify("READY=1\nSTATUS=serving") }
        do {
            let fresh = try loadConfiguration()
            let recognition = try Recognition(configuration: fresh.model, frontEnd: frontEndParameters)
            let spool = try fresh.spool.directory.isEmpty
                ? nil : ClipSpool(directory: fresh.spool.directory, quotaBytes: fresh.spool.quotaBytes)
            let restartNeeded = state.withLock { s -> Bool in
                let old = s.configuration
                s.configuration = fresh
                s.recognition = recognition
                s.spool = spool
                return old.source != fresh.source || old.socket != fresh.socket || old.pipeline != fresh.pipeline
            }
            pipeline.replaceRecognizer(recognition.recognizer)
            let models = recognition.modelIDs.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return ReloadEvent(
                ok: true,
                message: "reloaded \(fresh.model.bundle) (\(models))"
                    + (restartNeeded ? "; changes to [source], [socket] or [pipeline] take effect after a restart" : ""))
        } catch {
            report(ErrorEvent(code: "reload_failed", message: "reload failed, still serving the previous bundle: \(error)"))
            return ReloadEvent(ok: false, message: "\(error)")
        }
    }

    private func installSignalHandlers() {
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: control)
            source.setEventHandler { [self] in
                if number == SIGHUP { _ = reload() } else { stopped.signal() }
            }
            source.resume()
            signalSources.append(source)
        }
    }

    /// Pings at half of `WatchdogSec=` only while `ProgressCheck` sees the pipeline moving, so a
    /// stuck stage gets the process restarted.
    private func startWatchdog() {
        guard let interval = notifier.watchdogInterval else { return }
        let timer = DispatchSource.makeTimerSource(queue: control)
        var check = ProgressCheck()
        timer.schedule(deadline: .now() + interval / 2, repeating: interval / 2)
        timer.setEventHandler { [self] in
            if check.advanced(samples: pipeline.samplesAnalysed, decided: pipeline.decided, queued: pipeline.queuedWindows) {
                notifier.notify("WATCHDOG=1")
            }
        }
        timer.resume()
        watchdog = timer
    }

    /// `systemctl status` shows the last STATUS= line: keep it current.
    private func startStatusLine(every interval: Double) {
        guard notifier.isActive else { return }
        let timer = DispatchSource.makeTimerSource(queue: control)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [self] in
            let s = status(clients: [], disconnected: 0)
            notifier.notify(String(
                format: "STATUS=serving %@: %d windows, real time ×%.2f, %d windows dropped, %d xruns",
                pipeline.sourceName, s.windows, s.realTimeFactor, s.droppedWindows, s.xruns))
        }
        timer.resume()
        statusLine = timer
    }

    private func shutdown() -> Bool {
        notifier.notify("STOPPING=1\nSTATUS=stopping")
        watchdog?.cancel()
        statusLine?.cancel()
        stopSource()
        let finished = pipeline.wait(timeout: 1)
        if !finished {
            FileHandle.standardError.write(Data("equivd: inference still busy 1 s after the stop; not waiting for it\n".utf8))
        }
        server.stop()
        return finished
    }

    private func stopSource() {
        (source as? ALSACaptureSource)?.stop()
        (source as? FileStreamSource)?.stop()
    }

    /// Audio to keep for clips: the context, a window's span, and every window the inference
    /// queue may hold, so a clip is still there when inference falls behind as far as it can.
    private static func historySeconds(_ c: ServiceConfiguration, _ p: FrontEndParameters) -> Double {
        let span = Double(p.windowSpanSamples) / Double(p.sampleRate)
        let queued = Double(c.pipeline.windowQueue + 1) * Double(p.windowStepFrames * p.hopLength) / Double(p.sampleRate)
        return c.spool.contextSeconds + span + queued + 1
    }

    private static func groupID(_ name: String) throws(ConfigurationError) -> gid_t? {
        guard !name.isEmpty else { return nil }
        guard let entry = getgrnam(name) else {
            throw ConfigurationError(file: "configuration", key: "socket.group", line: nil, reason: "no group named \"\(name)\"")
        }
        return entry.pointee.gr_gid
    }
}

/// The watchdog's test of health between two looks: audio was analysed (capture and DSP move),
/// and inference kept up — it decided a window, or none is waiting.
struct ProgressCheck {
    private var samples = -1
    private var decided = -1

    mutating func advanced(samples: Int, decided: Int, queued: Int) -> Bool {
        defer { (self.samples, self.decided) = (samples, decided) }
        return samples > self.samples && (decided > self.decided || queued == 0)
    }
}
