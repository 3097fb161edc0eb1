import EquivProtocol
import Foundation
import Synchronization

/// What `status` reports about the daemon, read from the owners of each figure (the pipeline,
/// its source, the clip recorder), plus the one thing nobody else keeps: the last problem met.
/// The server adds its own figures, the clients'.
final class ServiceStatus: Sendable {
    private let pipeline: Pipeline
    private let recorder: ClipRecorder
    private let started = ContinuousClock.now
    private let lastError = Mutex<String?>(nil)
    /// The MQTT publisher, when there is one (set before serving).
    let mqtt = Mutex<MQTTPublisher?>(nil)

    init(pipeline: Pipeline, recorder: ClipRecorder) {
        self.pipeline = pipeline
        self.recorder = recorder
    }

    /// Remembers `message` as the last problem (a failed clip or reload).
    func record(error message: String) {
        lastError.withLock { $0 = message }
    }

    var event: StatusEvent {
        let uptime = started.duration(to: .now) / .seconds(1)
        let health = pipeline.sourceHealth
        var s = StatusEvent()
        s.uptimeSeconds = uptime
        s.realTimeFactor = pipeline.audioSeconds / max(uptime, 1e-9)
        s.audioSeconds = pipeline.audioSeconds
        s.windows = pipeline.decided
        s.queuedSamples = health.queuedSamples
        s.queuedWindows = pipeline.queuedWindows
        s.droppedSamples = pipeline.samplesLost
        s.gaps = pipeline.gaps
        s.droppedWindows = pipeline.droppedWindows
        s.xruns = health.xruns
        s.reconnects = health.reconnects
        s.nonFiniteSamples = health.nonFiniteSamples
        s.models = pipeline.recognition.modelIDs
        s.clips = recorder.clips
        s.lastError = lastError.withLock { $0 } ?? health.lastError ?? pipeline.error
        s.mqtt = mqtt.withLock { $0 }?.status
        return s
    }
}
