import EquivAudio
import EquivDSP
import EquivProtocol
import Foundation
import Logging
import ServiceLifecycle

/// `equivd run`: the composition root. It builds each part from the configuration, wires them,
/// and runs their lifecycles under swift-service-lifecycle's `ServiceGroup` (docs/architecture.md §3).
///
/// Start order: the bundle and the spool are loaded, the source opened (an ALSA device that is not
/// there yet is waited for in the background; STATUS= says so), the socket bound and the stages
/// started; only then READY=1. SIGTERM/SIGINT, or the end of a file source, shut down in
/// the reverse order of `services`: STOPPING=1 and the timers, the SIGHUP handler, the pipeline
/// (source stopped, the windows read decided), then the server (clients flushed, socket removed).
public enum Daemon {
    /// Re-reads the configuration on reload: the file again, with the command line's overrides.
    public typealias ConfigurationLoader = @Sendable () throws(ConfigurationError) -> ServiceConfiguration

    /// Serves until SIGTERM/SIGINT (or the end of a file source); returns once everything is
    /// closed and the socket file is gone. Returns false when inference was still inside a model
    /// call (stuck) at the stop: the process must then end with `_exit`, since the destructors
    /// `exit` runs (OpenBLAS frees its buffers) would pull memory from under that call.
    public static func run(loadConfiguration: @escaping ConfigurationLoader, notifier: SystemdNotifier = SystemdNotifier()) async throws -> Bool {
        let configuration = try loadConfiguration()
        let logger = DaemonLog.logger
        DaemonLog.setLevel(configuration.log.level)
        let frontEnd = try FrontEnd()
        let rate = frontEnd.parameters.sampleRate
        let recognition = try Recognition(configuration: configuration.model, frontEnd: frontEnd.parameters)
        let recorder = try ClipRecorder(configuration: configuration, frontEnd: frontEnd.parameters)
        let c = configuration.source
        logger.info("starting \(EquivdVersion.line(tool: "equivd")): \(c.kind == .alsa ? "ALSA device \(c.device)" : "file \(c.file)"), bundle \(configuration.model.bundle) (\(recognition.describedModels)), socket \(configuration.socket.path)")
        let (source, sourceName): (any AudioSource, String) = switch c.kind {
        case .alsa:
            (try ALSACaptureSource(configuration: c.alsaCapture(outputRate: frontEnd.parameters.sampleRate, onEvent: { event in
                switch event {
                case .lost(let why): logger.warning("capture from \(c.device) lost: \(why); reopening with backoff")
                case .back: logger.notice("capture from \(c.device) is back")
                case .overrun(let why): logger.warning("capture from \(c.device) overran (\(why)): the audio lost is reported as a gap")
                }
            })), c.device)
        case .file:
            (try FileStreamSource(
                path: c.file, sampleRate: frontEnd.parameters.sampleRate, realTime: c.pace == .realtime, speed: c.speed,
                loop: c.loop), c.file)
        }
        let pipeline = Pipeline(
            source: source, sourceName: sourceName, frontEnd: frontEnd, recognition: recognition, recorder: recorder,
            windowQueue: configuration.pipeline.windowQueue, dropWhenFull: c.kind == .alsa || c.pace == .realtime)
        let status = ServiceStatus(pipeline: pipeline, recorder: recorder)
        let s = configuration.socket
        let server = EventServer(settings: .init(
            path: s.path, mode: configuration.socketMode!, group: try groupID(s.group),
            maxRequestBytes: s.maxRequestBytes, clientBufferEvents: s.clientBufferEvents,
            dropLimit: s.clientDropLimit, maxClients: clientsWithinDescriptorLimit(s.maxClients, logger: logger), sendBufferBytes: s.sendBufferBytes, statusInterval: s.statusInterval))
        let http = try configuration.httpAddress.map { a throws(ServerError) in try HTTPServer(host: a.host, port: a.port) }
        /// Every event goes to the socket's clients and to the HTTP event streams.
        @Sendable func publish(_ line: String) {
            server.publish(line)
            http?.publish(line)
        }
        let run = String(format: "%016llx", UInt64.random(in: .min ... .max))
        /// A problem everyone hears of, and `status.last_error` names.
        @Sendable func report(_ event: ErrorEvent) {
            status.record(error: event.message)
            publish(EventProtocol.line(event))
        }
        let reloader = Reloader(
            running: configuration, loadConfiguration: loadConfiguration, frontEnd: frontEnd.parameters,
            pipeline: pipeline, recorder: recorder, notifier: notifier)
        @Sendable func reload() -> ReloadEvent {
            let reply = reloader.reload()
            if reply.ok {
                logger.notice("reload applied: \(reply.message)")
            } else {
                logger.error("reload refused, still serving the previous configuration and bundle: \(reply.message)")
                report(ErrorEvent(code: "reload_failed", message: "reload failed, still serving the previous bundle: \(reply.message)"))
            }
            return reply
        }
        do {
            try server.start(callbacks: .init(
                hello: { EventProtocol.line(pipeline.recognition.hello(source: sourceName)) },
                status: { status.event },
                reload: { reply in DispatchQueue.global().async { reply(EventProtocol.line(reload())) } }))
        } catch {
            pipeline.stop()
            throw error
        }

        let mqtt = try configuration.mqtt.host.isEmpty ? nil : MQTTPublisher(settings: configuration.mqtt.publisherSettings()) { message in
            logger.warning("MQTT: \(message)")
            report(ErrorEvent(code: "mqtt", message: message))
        }
        status.mqtt.withLock { $0 = mqtt }
        let health = HealthCheck(pipeline: pipeline, stallSeconds: configuration.http.stallSeconds)
        let metrics = ServiceMetrics(mqtt: mqtt != nil)
        if let http {
            do {
                try http.start(callbacks: .init(
                    hello: { EventProtocol.line(pipeline.recognition.hello(source: sourceName)) },
                    status: { server.status() },
                    health: { health.verdict },
                    metrics: { metrics.exposition(status: $0, sampleRate: rate) }))
            } catch {
                pipeline.stop()
                server.stop()
                throw error
            }
        }
        let stages = PipelineService(pipeline: pipeline)
        pipeline.start(onDecision: { window, decision in
            var clip: String?
            if decision.fallback == .abstain {
                do {
                    clip = try recorder.clip(for: window, source: sourceName, frontEnd: pipeline.frontEndParameters) {
                        // The window again, now keeping what the page shows: only for abstained windows, with spooling on.
                        window.values.withUnsafeBufferPointer { v in
                            window.audio.withUnsafeBufferPointer { pipeline.recognition.recognizer.inspect(v, audio: $0) }
                        }
                    }
                } catch {
                    report(ErrorEvent(code: "clip_failed", message: "\(error)"))
                }
            }
            http?.keep(window: window, decision: decision, parameters: pipeline.frontEndParameters)
            let event = PredictionEvent(window: window, decision: decision, source: sourceName, sampleRate: rate, clip: clip, run: run)
            metrics.record(event)
            let line = EventProtocol.line(event)
            publish(line)
            mqtt?.publish(prediction: event, line: line)
        }, onEnd: stages.ended)

        signal(SIGHUP, SIG_IGN)  // until the reload service traps it: a reload must never kill the daemon
        let state = source.health.lastError.map { "waiting for audio from \(sourceName): \($0)" } ?? "serving \(sourceName) on \(s.path)"
        notifier.notify("READY=1\nSTATUS=\(state)\nMAINPID=\(getpid())")
        logger.info("ready: \(state)")
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: EventServerService(server: server))]
        if let http { services.append(.init(service: HTTPService(server: http, health: health))) }
        if let mqtt {
            services.append(.init(service: MQTTService(
                publisher: mqtt, statusInterval: configuration.mqtt.statusInterval, drainSeconds: configuration.mqtt.drainSeconds,
                status: { (try? await server.status().get()).map { EventProtocol.line($0) } })))
        }
        services += [
            .init(service: stages, successTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: ReloadService(reload: { _ = reload() })),
            .init(service: SystemdService(notifier: notifier, pipeline: pipeline, status: status, statusInterval: s.statusInterval)),
        ]
        // ServiceGroup logs each service's start and end at debug level.
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        if !stages.drained {
            logger.error("inference still busy 1 s after the stop; not waiting for it")
        }
        if let failure = pipeline.error {
            logger.critical("stopped: the stream from \(sourceName) failed: \(failure)")
            throw DaemonError.streamFailed(source: sourceName, reason: failure)
        }
        logger.info("stopped: \(pipeline.decided) windows decided, \(String(format: "%.1f", pipeline.audioSeconds)) s of audio")
        return stages.drained
    }

    /// `wanted` clients, or fewer if the descriptor limit (raised to its hard limit if need be)
    /// leaves too few beside the `reserved` that capture, the bundle, clips, HTTP and MQTT use.
    private static func clientsWithinDescriptorLimit(_ wanted: Int, reserved: Int = 64, logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return wanted }
        let needed = rlim_t(wanted + reserved)
        if limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = min(needed, limit.rlim_max)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        guard limit.rlim_cur < needed else { return wanted }
        let allowed = max(1, Int(limit.rlim_cur) - reserved)
        logger.warning("socket.max_clients = \(wanted), but the descriptor limit is \(limit.rlim_cur): serving at most \(allowed) clients (raise LimitNOFILE=)")
        return allowed
    }

    private static func groupID(_ name: String) throws(ConfigurationError) -> gid_t? {
        guard !name.isEmpty else { return nil }
        guard let entry = getgrnam(name) else {
            throw ConfigurationError(file: "configuration", key: "socket.group", line: nil, reason: "no group named \"\(name)\"")
        }
        return entry.pointee.gr_gid
    }
}

/// Why the daemon stopped on its own with a failure; `equivd run` exits non-zero with it, so
/// `Restart=on-failure` acts.
public enum DaemonError: Error, CustomStringConvertible {
    /// The source ended with a read error (a file that went away, a device that cannot be read).
    case streamFailed(source: String, reason: String)

    public var description: String {
        switch self {
        case .streamFailed(let source, let reason): "the stream from \(source) failed: \(reason)"
        }
    }
}
