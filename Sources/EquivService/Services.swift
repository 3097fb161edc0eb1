import EquivProtocol
import Foundation
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The pipeline's lifecycle: it runs until the stream ends (a file played once) or graceful
/// shutdown stops the source; then at most 1 s for the windows already read to be decided.
final class PipelineService: Service, Sendable {
    private let pipeline: Pipeline
    private let end = AsyncStream<Void>.makeStream()
    private let finishedInTime = Atomic<Bool>(true)

    init(pipeline: Pipeline) { self.pipeline = pipeline }

    /// For `Pipeline.start(onEnd:)`: the last window is decided.
    var ended: @Sendable () -> Void { { [end] in end.continuation.finish() } }
    /// False when inference was still busy 1 s after the stop.
    var drained: Bool { finishedInTime.load(ordering: .relaxed) }

    func run() async {
        await withGracefulShutdownHandler {
            for await _ in end.stream {}
        } onGracefulShutdown: { [self] in
            DaemonLog.logger.info("stopping: capture ends, the windows already read are decided")
            pipeline.stop()
            DispatchQueue.global().async { [self] in
                if !pipeline.wait(timeout: 1) {
                    finishedInTime.store(false, ordering: .relaxed)
                    end.continuation.finish()
                }
            }
        }
    }
}

/// The socket stays up until everything before it has shut down, so the last predictions reach
/// the clients; then they are flushed and the socket file removed.
struct EventServerService: Service {
    let server: EventServer

    func run() async {
        try? await gracefulShutdown()
        server.stop()
    }
}

/// The HTTP listener, when configured: health sampled once a second until shutdown, then the
/// listener closed (its event streams end; browsers reconnect to the next daemon).
struct HTTPService: Service {
    let server: HTTPServer
    let health: HealthCheck

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                health.sample()
                try? await Task.sleep(for: .seconds(1))
            }
        }
        server.stop()
    }
}

/// The MQTT publisher: connected at start, a retained `status` every `statusInterval` seconds,
/// and at shutdown (after the pipeline, so its last predictions are queued) the queue drained
/// for up to `drain_seconds`, `offline` said and the connection closed.
struct MQTTService: Service {
    let publisher: MQTTPublisher
    let statusInterval: Double
    let drainSeconds: Double
    let status: @Sendable () async -> String?

    func run() async throws {
        try publisher.start()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if statusInterval > 0 {
                    try? await Task.sleep(for: .seconds(statusInterval))
                    if let line = await status() { publisher.publish(status: line) }
                } else {
                    try? await Task.sleep(for: .seconds(3600))
                }
            }
        }
        publisher.stop(drainSeconds: drainSeconds)
    }
}

/// SIGHUP reloads, until shutdown.
struct ReloadService: Service {
    let reload: @Sendable () -> Void

    func run() async {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups { reload() }
        }
    }
}

/// What systemd hears besides READY and RELOADING: WATCHDOG=1 at half of `WatchdogSec=` only
/// while `ProgressCheck` sees the pipeline moving (so a stuck stage gets the process restarted),
/// a current STATUS= line for `systemctl status`, and STOPPING=1 when shutdown begins.
struct SystemdService: Service {
    let notifier: SystemdNotifier
    let pipeline: Pipeline
    let status: ServiceStatus
    let statusInterval: Double

    func run() async {
        guard notifier.isActive else {
            try? await gracefulShutdown()
            return
        }
        try? await withGracefulShutdownHandler {
            try await cancelWhenGracefulShutdown {
                try await withThrowingDiscardingTaskGroup { group in
                    if let interval = notifier.watchdogInterval {
                        group.addTask { try await watchdog(every: interval / 2) }
                    }
                    group.addTask { try await statusLine(every: statusInterval) }
                }
            }
        } onGracefulShutdown: {
            notifier.notify("STOPPING=1\nSTATUS=stopping")
        }
    }

    private func watchdog(every seconds: Double) async throws {
        var check = ProgressCheck()
        while true {
            try await Task.sleep(for: .seconds(seconds))
            if check.advanced(samples: pipeline.samplesAnalysed, decided: pipeline.decided, queued: pipeline.queuedWindows) {
                notifier.notify("WATCHDOG=1")
            }
        }
    }

    private func statusLine(every seconds: Double) async throws {
        while true {
            try await Task.sleep(for: .seconds(seconds))
            let s = status.event
            if s.audioSeconds == 0, let problem = s.lastError {
                notifier.notify("STATUS=waiting for audio from \(pipeline.sourceName): \(problem)")
                continue
            }
            notifier.notify(String(
                format: "STATUS=serving %@: %d windows, real time ×%.2f, %d windows dropped, %d gaps, %d xruns",
                pipeline.sourceName, s.windows, s.realTimeFactor, s.droppedWindows, s.gaps, s.xruns))
        }
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
