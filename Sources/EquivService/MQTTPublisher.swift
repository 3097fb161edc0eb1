import CMosquitto
import EquivProtocol
import Foundation
import Synchronization

/// A libmosquitto call that failed: which, and libmosquitto's words for it.
public struct MQTTError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public var description: String { "mosquitto \(call) failed: \(String(cString: mosquitto_strerror(code)))" }

    /// The one checked call path into libmosquitto.
    static func check(_ code: Int32, _ call: String) throws(MQTTError) {
        guard code == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError(call: call, code: code) }
    }
}

/// Publishes the daemon's events to an MQTT broker (`[mqtt]`, docs/fleet.md): predictions (all,
/// label changes or fallbacks only) on `<prefix>/prediction` through the on-disk `MQTTQueue`,
/// so none is lost while the broker is away or across a restart; `status` on `<prefix>/status`
/// (retained, only while connected); `online`/`offline` retained on `<prefix>/availability`,
/// `offline` being the last will.
///
/// libmosquitto runs its own network thread (`mosquitto_loop_start`), reconnecting with
/// exponential backoff; its callbacks hop onto `work`, the one queue that touches the disk
/// queue and the in-flight table. A message handed to libmosquitto stays on disk until its
/// PUBACK; libmosquitto itself resends those in flight after a reconnect, and after a restart
/// the disk queue sends everything again from the oldest. Delivery is at least once; the
/// subscriber drops repeats by `(run, seq)`.
public final class MQTTPublisher: @unchecked Sendable {
    public enum Filter: String, Sendable, CaseIterable { case all, changes, fallbacks }

    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        public var clientID: String
        public var topicPrefix: String
        public var qos: Int32
        public var keepalive: Int32
        public var username: String?
        public var password: String?
        public var tls: (ca: String, certificate: String?, key: String?)?
        public var filter: Filter
        public var queueDirectory: String
        public var queueBytes: Int
        public var maxInflight = 20
    }

    public let settings: Settings
    private let handle: OpaquePointer
    private let work = DispatchQueue(label: "equivd.mqtt")
    private let report: @Sendable (String) -> Void
    // On `work` only.
    private let queue: MQTTQueue
    private var connected = false
    private var inflight: [Int32: MQTTQueue.Item] = [:]
    /// Items before this number were handed to libmosquitto in this process.
    private var handedUpTo: UInt64 = 0
    private var lastLabel: String?? = .none
    private var stopping = false
    /// The broker answered the last attempt with a refusal (already reported, more telling than
    /// the disconnect that follows).
    private var refused = false
    private let figures = Mutex(MQTTStatus())

    /// Opens the queue and configures the client; nothing connects until `start`. `report`
    /// hears every connection problem once per change (the log and `status.last_error`).
    public init(settings: Settings, report: @escaping @Sendable (String) -> Void) throws(ConfigurationError) {
        self.settings = settings
        self.report = report
        queue = try MQTTQueue(directory: settings.queueDirectory, quotaBytes: settings.queueBytes)
        mosquitto_lib_init()
        // A persistent session would make the broker hold messages for us; we hold our own.
        guard let handle = mosquitto_new(settings.clientID, true, nil) else {
            throw ConfigurationError(file: "configuration", key: "mqtt.client_id", line: nil, reason: "mosquitto_new failed: \(String(cString: strerror(errno)))")
        }
        self.handle = handle
        do {
            try configure()
        } catch {
            mosquitto_destroy(handle)
            throw ConfigurationError(file: "configuration", key: "mqtt", line: nil, reason: "\(error)")
        }
        figures.withLock { $0.queued = queue.items.count; $0.queuedBytes = queue.totalBytes }
    }

    deinit {
        mosquitto_destroy(handle)
    }

    private func configure() throws(MQTTError) {
        let s = settings
        try MQTTError.check(mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311), "int_option(protocol)")
        try MQTTError.check(mosquitto_max_inflight_messages_set(handle, UInt32(s.maxInflight)), "max_inflight_messages_set")
        // 1 s, doubling to at most 10 s: a broker back from an outage is found within 10 s.
        try MQTTError.check(mosquitto_reconnect_delay_set(handle, 1, 10, true), "reconnect_delay_set")
        try MQTTError.check(mosquitto_will_set(handle, availabilityTopic, 7, "offline", s.qos, true), "will_set")
        if let user = s.username { try MQTTError.check(mosquitto_username_pw_set(handle, user, s.password), "username_pw_set") }
        if let tls = s.tls { try MQTTError.check(mosquitto_tls_set(handle, tls.ca, nil, tls.certificate, tls.key, nil), "tls_set") }
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_callback_set(handle) { _, me, rc in MQTTPublisher.from(me).connected(rc) }
        mosquitto_disconnect_callback_set(handle) { _, me, rc in MQTTPublisher.from(me).disconnected(rc, errno: errno) }
        mosquitto_publish_callback_set(handle) { _, me, mid in MQTTPublisher.from(me).acknowledged(mid) }
        mosquitto_log_callback_set(handle) { _, me, level, text in
            guard level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING) != 0, let text else { return }
            MQTTPublisher.from(me).problem(String(cString: text))
        }
    }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> MQTTPublisher {
        Unmanaged<MQTTPublisher>.fromOpaque(pointer!).takeUnretainedValue()
    }

    var availabilityTopic: String { settings.topicPrefix + "/availability" }

    /// Starts the network thread and the first connection attempt (a broker that is not there
    /// yet is retried, with backoff, as one lost later).
    public func start() throws(MQTTError) {
        try MQTTError.check(mosquitto_loop_start(handle), "loop_start")
        let rc = mosquitto_connect_async(handle, settings.host, Int32(settings.port), settings.keepalive)
        if rc != MOSQ_ERR_SUCCESS.rawValue {
            let why = rc == MOSQ_ERR_ERRNO.rawValue ? String(cString: strerror(errno)) : String(cString: mosquitto_strerror(rc))
            problem("cannot connect to \(settings.host):\(settings.port): \(why) (retrying)")
            failed()
        }
    }

    /// Queues a prediction when the filter lets it through (from the inference queue).
    public func publish(prediction event: PredictionEvent, line: String) {
        work.async { [self] in
            let changed = lastLabel.map { $0 != event.label } ?? true
            lastLabel = .some(event.label)
            switch settings.filter {
            case .all: break
            case .changes: guard changed else { return }
            case .fallbacks: guard event.fallback == .topk || event.fallback == .abstain else { return }
            }
            if !queue.append(topic: settings.topicPrefix + "/prediction", payload: line.trimmingCharacters(in: .newlines)) {
                problem("cannot queue a prediction in \(settings.queueDirectory): \(String(cString: strerror(errno)))")
            }
            pump()
        }
    }

    /// Publishes `status` retained, if connected (a status is a state: the next one replaces it).
    public func publish(status line: String) {
        work.async { [self] in
            guard connected else { return }
            let bytes = Array(line.trimmingCharacters(in: .newlines).utf8)
            _ = mosquitto_publish(handle, nil, settings.topicPrefix + "/status", Int32(bytes.count), bytes, 0, true)
        }
    }

    public var status: MQTTStatus { figures.withLock { $0 } }

    /// Waits up to `drainSeconds` for the queue to empty (while connected), says `offline`, and
    /// disconnects; what is still queued stays on disk for the next start.
    public func stop(drainSeconds: Double) {
        let deadline = ContinuousClock.now + .seconds(drainSeconds)
        while ContinuousClock.now < deadline && work.sync(execute: { connected && !queue.items.isEmpty }) {
            usleep(20_000)
        }
        work.sync {
            stopping = true
            if connected { _ = mosquitto_publish(handle, nil, availabilityTopic, 7, "offline", settings.qos, true) }
        }
        usleep(100_000)  // for the offline message to leave
        mosquitto_disconnect(handle)
        mosquitto_loop_stop(handle, false)
    }

    // MARK: On libmosquitto's thread, handed to `work`

    private func connected(_ rc: Int32) {
        work.async { [self] in
            refused = rc != 0
            guard rc == 0 else {
                problem("broker \(settings.host):\(settings.port) refused the connection: \(String(cString: mosquitto_connack_string(rc)))")
                failed()
                return
            }
            connected = true
            figures.withLock { $0.connected = true; $0.lastError = nil }
            _ = mosquitto_publish(handle, nil, availabilityTopic, 6, "online", settings.qos, true)
            pump()
        }
    }

    /// `errno` as it was on libmosquitto's thread, for MOSQ_ERR_ERRNO.
    private func disconnected(_ rc: Int32, errno code: Int32) {
        let why = rc == MOSQ_ERR_ERRNO.rawValue ? String(cString: strerror(code)) : String(cString: mosquitto_strerror(rc))
        work.async { [self] in
            let was = connected
            connected = false
            figures.withLock { $0.connected = false }
            guard rc != 0 && !stopping && !refused else { return }
            if was {
                problem("lost the broker \(settings.host):\(settings.port): \(why) (reconnecting)")
            } else {
                problem("cannot reach the broker \(settings.host):\(settings.port): \(why) (retrying)")
                failed()
            }
        }
    }

    private func acknowledged(_ mid: Int32) {
        work.async { [self] in
            guard let item = inflight.removeValue(forKey: mid) else { return }  // online/offline, or dropped past the quota
            queue.remove(item)
            figures.withLock { $0.sent += 1 }
            pump()
        }
    }

    private func problem(_ message: String) {
        let changed = figures.withLock { f -> Bool in
            defer { f.lastError = message }
            return f.lastError != message
        }
        if changed { report("mqtt: \(message)") }
    }

    private func failed() { figures.withLock { $0.failed += 1 } }

    // MARK: On `work`

    /// Hands queued messages to libmosquitto, oldest first, while connected and the window has room.
    private func pump() {
        defer { figures.withLock { $0.queued = queue.items.count; $0.queuedBytes = queue.totalBytes; $0.dropped = queue.dropped } }
        guard connected else { return }
        for item in queue.items where item.number >= handedUpTo {
            guard inflight.count < settings.maxInflight else { return }
            handedUpTo = item.number + 1
            guard let message = queue.read(item) else {
                queue.remove(item)
                continue
            }
            var mid: Int32 = 0
            let rc = message.payload.withUnsafeBytes {
                mosquitto_publish(handle, &mid, message.topic, Int32($0.count), $0.baseAddress, settings.qos, false)
            }
            guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                handedUpTo = item.number  // again after the reconnect
                return
            }
            if settings.qos == 0 {
                queue.remove(item)  // QoS 0 has no acknowledgement: handed over is all there is
                figures.withLock { $0.sent += 1 }
            } else {
                inflight[mid] = item
            }
        }
    }
}
