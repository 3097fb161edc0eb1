import EquivProtocol
import Foundation
import Prometheus
import Synchronization

/// The daemon's Prometheus metrics (`GET /metrics`), on a registry of its own. Figures that have
/// an owner elsewhere (the pipeline's counters, the source's xruns, the server's clients) are
/// copied from `status` at each scrape, so there is one count of each thing; what exists only
/// per window (predictions by label and fallback, the shift, latency) is recorded here as
/// windows are decided.
///
/// Made on swift-prometheus's registry directly rather than through swift-metrics' facade: the
/// facade has no help text, and `promtool check metrics` requires it.
public final class ServiceMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let windows, windowsDropped, audio, audioLost, gaps, xruns, reconnects, clips, nonFinite: Counter
    private let queuedWindows, clients, uptime: Gauge
    private let shift, latency: ValueHistogram
    private let mqtt: (queued: Gauge, queuedBytes: Gauge, connected: Gauge, sent: Counter, failed: Counter, dropped: Counter)?
    private let bundle = Mutex<(ids: [String: String], gauge: Gauge)?>(nil)

    /// `mqtt`: the MQTT publisher is configured, and its figures are exported.
    public init(mqtt withMQTT: Bool) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func counter(_ name: String, _ help: String) -> Counter { registry.makeCounter(descriptor: Self.name(name, help)) }
        func gauge(_ name: String, _ help: String) -> Gauge { registry.makeGauge(descriptor: Self.name(name, help)) }
        windows = counter("equivd_windows_total", "Spectrogram windows decided.")
        windowsDropped = counter("equivd_windows_dropped_total", "Windows dropped from the full inference queue.")
        audio = counter("equivd_audio_seconds_total", "Seconds of audio analysed.")
        audioLost = counter("equivd_audio_lost_seconds_total", "Seconds of audio lost in capture gaps (overwritten, overruns, reopens).")
        gaps = counter("equivd_gaps_total", "Gaps in the captured audio.")
        xruns = counter("equivd_xruns_total", "Capture overruns recovered.")
        reconnects = counter("equivd_reconnects_total", "Times the capture device was reopened.")
        clips = counter("equivd_clips_total", "Clips of abstained windows written to the spool.")
        nonFinite = counter("equivd_non_finite_samples_total", "NaN or infinite input samples replaced by zero.")
        queuedWindows = gauge("equivd_queued_windows", "Windows waiting for inference.")
        clients = gauge("equivd_clients", "Clients connected to the event socket.")
        uptime = gauge("equivd_uptime_seconds", "Seconds since the daemon started.")
        // Shift buckets every semitone over ±12; latency from 1 ms to 2 s.
        shift = registry.makeValueHistogram(
            descriptor: Self.name("equivd_shift_semitones", "Shift the canonicalizer removed, in semitones (a reading of line speed)."),
            buckets: (-12..<12).map { Double($0) + 0.5 })
        latency = registry.makeValueHistogram(
            descriptor: Self.name("equivd_decision_latency_seconds", "From the window's last sample arriving to its prediction being published."),
            buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2])
        mqtt = withMQTT
            ? (gauge("equivd_mqtt_queue_messages", "Predictions waiting in the MQTT on-disk queue (in flight included)."),
               gauge("equivd_mqtt_queue_bytes", "Bytes of the MQTT on-disk queue."),
               gauge("equivd_mqtt_connected", "1 while connected to the MQTT broker."),
               counter("equivd_mqtt_sent_total", "Predictions the MQTT broker acknowledged."),
               counter("equivd_mqtt_failed_total", "Failed connection attempts to the MQTT broker."),
               counter("equivd_mqtt_dropped_total", "Queued predictions dropped, oldest first, past mqtt.queue_bytes."))
            : nil
        registry.makeGauge(
            descriptor: Self.name("equivd_build_info", "The build serving: 1."),
            labels: [("version", EquivdVersion.string), ("arch", EquivdVersion.architecture)]
        ).set(to: 1)
    }

    /// The bundle serving, as an info metric; after a reload the old series goes.
    private func setBundle(_ ids: [String: String]) {
        bundle.withLock { current in
            guard current?.ids != ids else { return }
            if let current { registry.unregisterGauge(current.gauge) }
            let labels = [("canonicalizer", ids["canonicalizer"] ?? ""), ("classifier", ids["classifier"] ?? "")]
            let gauge = registry.makeGauge(
                descriptor: Self.name("equivd_bundle_info", "The model bundle serving (SHA-256 prefixes): 1."), labels: labels)
            gauge.set(to: 1)
            current = (ids, gauge)
        }
    }

    /// A full metric name as one descriptor (the library splits it into parts only to join them again).
    private static func name(_ full: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: full, unitName: "", helpText: help)
    }

    /// One decided window (on the inference queue).
    public func record(_ event: PredictionEvent) {
        registry.makeCounter(
            descriptor: Self.name("equivd_predictions_total", "Predictions published, by label (empty when abstained or idle) and fallback."),
            labels: [("label", event.label ?? ""), ("fallback", event.fallback.rawValue)]
        ).increment()
        if event.fallback != .idle { shift.record(event.shiftSemitones) }
        latency.record(event.latencyMs / 1000)
    }

    /// The exposition, with the owned figures copied from `status` first.
    public func exposition(status s: StatusEvent, sampleRate: Int) -> [UInt8] {
        func copy(_ counter: Counter, _ value: Double) {
            counter.reset()
            counter.increment(by: value)
        }
        copy(windows, Double(s.windows))
        copy(windowsDropped, Double(s.droppedWindows))
        copy(audio, s.audioSeconds)
        copy(audioLost, Double(s.droppedSamples) / Double(sampleRate))
        copy(gaps, Double(s.gaps))
        copy(xruns, Double(s.xruns))
        copy(reconnects, Double(s.reconnects))
        copy(clips, Double(s.clips))
        copy(nonFinite, Double(s.nonFiniteSamples))
        queuedWindows.set(to: Double(s.queuedWindows))
        clients.set(to: Double(s.clients.count))
        uptime.set(to: s.uptimeSeconds)
        if let mqtt, let m = s.mqtt {
            mqtt.queued.set(to: Double(m.queued))
            mqtt.queuedBytes.set(to: Double(m.queuedBytes))
            mqtt.connected.set(to: m.connected ? 1 : 0)
            copy(mqtt.sent, Double(m.sent))
            copy(mqtt.failed, Double(m.failed))
            copy(mqtt.dropped, Double(m.dropped))
        }
        setBundle(s.models)
        return registry.emitToBuffer()
    }
}
