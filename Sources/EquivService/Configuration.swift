import EquivAudio
import EquivProtocol
import Foundation
import Logging
import TOMLKit

/// A configuration problem, naming the key (`section.key`) and, where known, the line.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let key: String?
    public let line: Int?
    public let reason: String

    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let key { place += ": \(key)" }
        return "\(place): \(reason)"
    }
}

/// Everything `equivd run` can be told, with the defaults that `Config/equivd.toml` documents.
/// Keys are the TOML names; every field has one, and an unknown key is an error.
public struct ServiceConfiguration: Sendable, Equatable {
    public enum SourceKind: String, Sendable, CaseIterable { case alsa, file }
    public enum Pace: String, Sendable, CaseIterable { case realtime, fast }

    public struct Source: Sendable, Equatable {
        public var kind = SourceKind.alsa
        /// ALSA's first card through its plug converter, never a sound server: "default" is
        /// PipeWire or PulseAudio on a desktop Debian, which a system user cannot reach.
        public var device = "sysdefault"
        /// An alsa-lib configuration file to define `device` in; empty for the system's.
        public var alsaConfig = ""
        public var sampleRate = 16_000
        public var channels = 1
        /// A sample format in alsa-lib's naming, or "auto" for the best the device takes.
        public var format = "auto"
        public var periodFrames = 1600
        public var bufferFrames = 6400
        public var ringSeconds = 10.0
        public var file = ""
        public var pace = Pace.realtime
        /// With `pace = realtime`: play this many times faster than real time.
        public var speed = 1.0
        public var loop = false
    }

    public struct Model: Sendable, Equatable {
        public var bundle = "Models"
        public var mode = RecognitionMode.topk
        /// Overrides of bundle.json's calibrated thresholds; nil keeps the bundle's.
        public var canonicalizerMinP: Double? = nil
        public var topK: Int? = nil
        public var classifierMinP: Double? = nil
        public var idleMeanLog = -11.5

        public init() {}
    }

    public struct Pipeline: Sendable, Equatable {
        public var windowQueue = 8
    }

    public struct Socket: Sendable, Equatable {
        public var path = "/run/equivd/equivd.sock"
        public var mode = "0660"
        public var group = ""
        public var maxRequestBytes = 4096
        public var clientBufferEvents = 256
        public var clientDropLimit = 10_000
        /// Clients served at once; one more is told `too_many_clients` and closed, so clients can
        /// never take the descriptors capture, clips and the queue need.
        public var maxClients = 64
        public var sendBufferBytes = 0
        public var statusInterval = 10.0
    }

    public struct Spool: Sendable, Equatable {
        public var directory = ""
        public var quotaBytes = 50_000_000
        public var contextSeconds = 1.0
    }

    /// The read-only HTTP listener (live page, event stream, health); off while `listen` is empty.
    public struct HTTP: Sendable, Equatable {
        /// host:port, e.g. "127.0.0.1:9730" or "[::1]:9730".
        public var listen = ""
        /// A non-loopback `listen` address is refused unless this says so.
        public var allowNonLoopback = false
        /// `/healthz` answers 503 after this long without progress.
        public var stallSeconds = 10.0
    }

    /// The MQTT publisher (docs/fleet.md); off while `host` is empty.
    public struct MQTT: Sendable, Equatable {
        public var host = ""
        public var port = 1883
        /// Empty: the host name.
        public var clientID = ""
        /// Empty: "equivd/<host name>".
        public var topicPrefix = ""
        public var qos = 1
        public var keepalive = 30
        public var username = ""
        /// A file holding the password (its first line), readable by the daemon only.
        public var passwordFile = ""
        /// TLS when `tlsCA` is set; a client certificate and key when both are.
        public var tlsCA = ""
        public var tlsCert = ""
        public var tlsKey = ""
        public var publish = MQTTPublisher.Filter.all
        /// Seconds between retained `status` messages; 0: none.
        public var statusInterval = 60.0
        public var queueDirectory = "/var/lib/equivd/mqtt"
        public var queueBytes = 10_000_000
        /// At shutdown, how long to wait for the queue to empty while connected.
        public var drainSeconds = 5.0
    }

    /// The daemon's log (stderr; the journal under systemd).
    public struct Log: Sendable, Equatable {
        public var level = Logger.Level.info
    }

    public var source = Source()
    public var model = Model()
    public var pipeline = Pipeline()
    public var socket = Socket()
    public var spool = Spool()
    public var http = HTTP()
    public var mqtt = MQTT()
    public var log = Log()

    public init() {}

    /// Reads a TOML file; every key is optional and defaults as above.
    public init(file: String) throws(ConfigurationError) {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigurationError(file: file, key: nil, line: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        try self.init(toml: text, file: file)
    }

    public init(toml text: String, file: String) throws(ConfigurationError) {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(file: file, key: nil, line: error.source.begin.line, reason: error.description)
        } catch {
            throw ConfigurationError(file: file, key: nil, line: nil, reason: "\(error)")
        }
        var reader = TableReader(file: file, text: text)
        try reader.read(table, into: &self)
        try validate(file: file)
    }

    /// Range checks that need no I/O; the bundle and the device are checked when opened.
    public func validate(file: String) throws(ConfigurationError) {
        func require(_ ok: Bool, _ key: String, _ reason: String) throws(ConfigurationError) {
            if !ok { throw ConfigurationError(file: file, key: key, line: nil, reason: reason) }
        }
        try require(source.kind != .file || !source.file.isEmpty, "source.file", "must be set when source.kind is \"file\"")
        try require(source.speed > 0 && source.speed <= 10_000, "source.speed", "must be in (0, 10000]")
        try require((8000...384_000).contains(source.sampleRate), "source.sample_rate", "must be in 8000...384000")
        try require((1...32).contains(source.channels), "source.channels", "must be in 1...32")
        try require(source.format == "auto" || ALSASampleFormat(rawValue: source.format) != nil, "source.format",
                    "must be auto, " + ALSASampleFormat.allCases.map(\.rawValue).joined(separator: ", ") + "; got \"\(source.format)\"")
        try require(source.periodFrames > 0, "source.period_frames", "must be positive")
        try require(source.bufferFrames >= 2 * source.periodFrames, "source.buffer_frames", "must be at least 2 periods")
        try require(source.ringSeconds >= 1, "source.ring_seconds", "must be at least 1")
        try require(model.canonicalizerMinP.map { (0...1).contains($0) } ?? true, "model.canonicalizer_min_p", "must be in 0...1")
        try require(model.classifierMinP.map { (0...1).contains($0) } ?? true, "model.classifier_min_p", "must be in 0...1")
        try require(model.topK.map { $0 >= 1 } ?? true, "model.top_k", "must be at least 1")
        try require(pipeline.windowQueue >= 1, "pipeline.window_queue", "must be at least 1")
        try require(!socket.path.isEmpty && socket.path.utf8.count < 108, "socket.path", "must be 1...107 bytes")
        try require(socketMode != nil, "socket.mode", "must be an octal mode such as \"0660\", got \"\(socket.mode)\"")
        try require(socket.maxRequestBytes >= 64, "socket.max_request_bytes", "must be at least 64")
        try require(socket.clientBufferEvents >= 1, "socket.client_buffer_events", "must be at least 1")
        try require(socket.clientDropLimit >= 1, "socket.client_drop_limit", "must be at least 1")
        try require((1...100_000).contains(socket.maxClients), "socket.max_clients", "must be in 1...100000")
        try require(socket.sendBufferBytes >= 0, "socket.send_buffer_bytes", "must not be negative")
        try require(socket.statusInterval > 0, "socket.status_interval", "must be positive")
        try require(spool.quotaBytes >= 0, "spool.quota_bytes", "must not be negative")
        try require((1...65535).contains(mqtt.port), "mqtt.port", "must be in 1...65535")
        try require((0...2).contains(mqtt.qos), "mqtt.qos", "must be 0, 1 or 2")
        try require(mqtt.keepalive >= 5, "mqtt.keepalive", "must be at least 5 seconds")
        try require(mqtt.statusInterval >= 0, "mqtt.status_interval", "must not be negative")
        try require(mqtt.queueBytes >= 4096, "mqtt.queue_bytes", "must be at least 4096")
        try require(mqtt.drainSeconds >= 0, "mqtt.drain_seconds", "must not be negative")
        try require(mqtt.tlsCert.isEmpty == mqtt.tlsKey.isEmpty, "mqtt.tls_cert", "give mqtt.tls_cert and mqtt.tls_key together")
        try require(mqtt.tlsCert.isEmpty || !mqtt.tlsCA.isEmpty, "mqtt.tls_ca", "must be set for a client certificate (TLS)")
        try require(mqtt.passwordFile.isEmpty || !mqtt.username.isEmpty, "mqtt.username", "must be set with mqtt.password_file")
        try require(!mqtt.topicPrefix.contains("#") && !mqtt.topicPrefix.contains("+"), "mqtt.topic_prefix", "must not hold MQTT wildcards (# or +)")
        try require(http.stallSeconds > 0, "http.stall_seconds", "must be positive")
        if !http.listen.isEmpty {
            guard let address = httpAddress else {
                throw ConfigurationError(file: file, key: "http.listen", line: nil, reason: "must be host:port with a numeric address, e.g. \"127.0.0.1:9730\" or \"[::1]:9730\", got \"\(http.listen)\"")
            }
            try require(http.allowNonLoopback || address.isLoopback, "http.listen",
                        "\(http.listen) is not a loopback address; set http.allow_non_loopback = true to serve other hosts")
        }
        try require(spool.contextSeconds >= 0 && spool.contextSeconds <= source.ringSeconds,
                    "spool.context_seconds", "must be in 0...source.ring_seconds")
    }

    /// `http.listen` parsed: a numeric IPv4 or bracketed IPv6 address (or "localhost") and a port.
    public var httpAddress: (host: String, port: Int, isLoopback: Bool)? {
        guard let colon = http.listen.lastIndex(of: ":"), let port = Int(http.listen[http.listen.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(http.listen[..<colon])
        if host == "localhost" { host = "127.0.0.1" }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            var a = in6_addr()
            guard inet_pton(AF_INET6, host, &a) == 1 else { return nil }
            let loopback = withUnsafeBytes(of: &a) { Array($0) } == [UInt8](repeating: 0, count: 15) + [1]
            return (host, port, loopback)
        }
        var a = in_addr()
        guard inet_pton(AF_INET, host, &a) == 1 else { return nil }
        return (host, port, UInt32(bigEndian: a.s_addr) >> 24 == 127)
    }

    /// `socket.mode` as a permission mask.
    public var socketMode: mode_t? {
        guard let m = UInt32(socket.mode, radix: 8), m <= 0o777 else { return nil }
        return mode_t(m)
    }
}

/// Copies a parsed TOML table into the configuration, key by key, so that an unknown key or a
/// value of the wrong type is reported with its name and line.
private struct TableReader {
    let file: String
    let lines: [Substring]

    init(file: String, text: String) {
        self.file = file
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    mutating func read(_ table: TOMLTable, into c: inout ServiceConfiguration) throws(ConfigurationError) {
        for section in table.keys {
            guard ["source", "model", "pipeline", "socket", "spool", "http", "mqtt", "log"].contains(section) else {
                throw error(section, nil, "unknown section")
            }
            guard let inner = table[section]?.table else {
                throw error(section, nil, "expected a [\(section)] table")
            }
            for key in inner.keys {
                let value = inner[key]!
                switch (section, key) {
                case ("source", "kind"): c.source.kind = try choice(value, section, key)
                case ("source", "device"): c.source.device = try string(value, section, key)
                case ("source", "alsa_config"): c.source.alsaConfig = try string(value, section, key)
                case ("source", "sample_rate"): c.source.sampleRate = try int(value, section, key)
                case ("source", "channels"): c.source.channels = try int(value, section, key)
                case ("source", "format"): c.source.format = try string(value, section, key)
                case ("source", "period_frames"): c.source.periodFrames = try int(value, section, key)
                case ("source", "buffer_frames"): c.source.bufferFrames = try int(value, section, key)
                case ("source", "ring_seconds"): c.source.ringSeconds = try double(value, section, key)
                case ("source", "file"): c.source.file = try string(value, section, key)
                case ("source", "pace"): c.source.pace = try choice(value, section, key)
                case ("source", "speed"): c.source.speed = try double(value, section, key)
                case ("source", "loop"): c.source.loop = try bool(value, section, key)
                case ("model", "bundle"): c.model.bundle = try string(value, section, key)
                case ("model", "mode"): c.model.mode = try choice(value, section, key)
                case ("model", "canonicalizer_min_p"): c.model.canonicalizerMinP = try double(value, section, key)
                case ("model", "top_k"): c.model.topK = try int(value, section, key)
                case ("model", "classifier_min_p"): c.model.classifierMinP = try double(value, section, key)
                case ("model", "idle_mean_log"): c.model.idleMeanLog = try double(value, section, key)
                case ("pipeline", "window_queue"): c.pipeline.windowQueue = try int(value, section, key)
                case ("socket", "path"): c.socket.path = try string(value, section, key)
                case ("socket", "mode"): c.socket.mode = try string(value, section, key)
                case ("socket", "group"): c.socket.group = try string(value, section, key)
                case ("socket", "max_request_bytes"): c.socket.maxRequestBytes = try int(value, section, key)
                case ("socket", "client_buffer_events"): c.socket.clientBufferEvents = try int(value, section, key)
                case ("socket", "client_drop_limit"): c.socket.clientDropLimit = try int(value, section, key)
                case ("socket", "max_clients"): c.socket.maxClients = try int(value, section, key)
                case ("socket", "send_buffer_bytes"): c.socket.sendBufferBytes = try int(value, section, key)
                case ("socket", "status_interval"): c.socket.statusInterval = try double(value, section, key)
                case ("spool", "directory"): c.spool.directory = try string(value, section, key)
                case ("spool", "quota_bytes"): c.spool.quotaBytes = try int(value, section, key)
                case ("spool", "context_seconds"): c.spool.contextSeconds = try double(value, section, key)
                case ("http", "listen"): c.http.listen = try string(value, section, key)
                case ("http", "allow_non_loopback"): c.http.allowNonLoopback = try bool(value, section, key)
                case ("http", "stall_seconds"): c.http.stallSeconds = try double(value, section, key)
                case ("mqtt", "host"): c.mqtt.host = try string(value, section, key)
                case ("mqtt", "port"): c.mqtt.port = try int(value, section, key)
                case ("mqtt", "client_id"): c.mqtt.clientID = try string(value, section, key)
                case ("mqtt", "topic_prefix"): c.mqtt.topicPrefix = try string(value, section, key)
                case ("mqtt", "qos"): c.mqtt.qos = try int(value, section, key)
                case ("mqtt", "keepalive"): c.mqtt.keepalive = try int(value, section, key)
                case ("mqtt", "username"): c.mqtt.username = try string(value, section, key)
                case ("mqtt", "password_file"): c.mqtt.passwordFile = try string(value, section, key)
                case ("mqtt", "tls_ca"): c.mqtt.tlsCA = try string(value, section, key)
                case ("mqtt", "tls_cert"): c.mqtt.tlsCert = try string(value, section, key)
                case ("mqtt", "tls_key"): c.mqtt.tlsKey = try string(value, section, key)
                case ("mqtt", "publish"): c.mqtt.publish = try choice(value, section, key)
                case ("mqtt", "status_interval"): c.mqtt.statusInterval = try double(value, section, key)
                case ("mqtt", "queue_directory"): c.mqtt.queueDirectory = try string(value, section, key)
                case ("mqtt", "queue_bytes"): c.mqtt.queueBytes = try int(value, section, key)
                case ("mqtt", "drain_seconds"): c.mqtt.drainSeconds = try double(value, section, key)
                case ("log", "level"): c.log.level = try choice(value, section, key)
                default: throw error(section, key, "unknown key")
                }
            }
        }
    }

    private func string(_ v: TOMLValueConvertible, _ s: String, _ k: String) throws(ConfigurationError) -> String {
        guard let x = v.string else { throw error(s, k, "expected a string, got \(v.type)") }
        return x
    }

    private func int(_ v: TOMLValueConvertible, _ s: String, _ k: String) throws(ConfigurationError) -> Int {
        guard let x = v.int else { throw error(s, k, "expected an integer, got \(v.type)") }
        return x
    }

    private func double(_ v: TOMLValueConvertible, _ s: String, _ k: String) throws(ConfigurationError) -> Double {
        if let x = v.double { return x }
        if let x = v.int { return Double(x) }
        throw error(s, k, "expected a number, got \(v.type)")
    }

    private func bool(_ v: TOMLValueConvertible, _ s: String, _ k: String) throws(ConfigurationError) -> Bool {
        guard let x = v.bool else { throw error(s, k, "expected true or false, got \(v.type)") }
        return x
    }

    private func choice<T: RawRepresentable & CaseIterable>(_ v: TOMLValueConvertible, _ s: String, _ k: String) throws(ConfigurationError) -> T
    where T.RawValue == String {
        let x = try string(v, s, k)
        guard let value = T(rawValue: x) else {
            throw error(s, k, "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(x)\"")
        }
        return value
    }

    private func error(_ section: String, _ key: String?, _ reason: String) -> ConfigurationError {
        ConfigurationError(file: file, key: key.map { "\(section).\($0)" } ?? section, line: line(section, key), reason: reason)
    }

    /// TOMLKit gives positions only for syntax errors, so the line of a key is found in the text:
    /// the first `key =` after the `[section]` header (or the header itself).
    private func line(_ section: String, _ key: String?) -> Int? {
        var inSection = false
        for (n, raw) in lines.enumerated() {
            let text = raw.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("[") {
                inSection = text.dropFirst().prefix(while: { $0 != "]" }).trimmingCharacters(in: .whitespaces) == section
                if inSection && key == nil { return n + 1 }
                continue
            }
            guard inSection, let key, text.hasPrefix(key) else { continue }
            if text.dropFirst(key.count).trimmingCharacters(in: .whitespaces).hasPrefix("=") { return n + 1 }
        }
        return nil
    }
}

extension ServiceConfiguration.MQTT {
    /// The publisher's settings, the password read from its file and the defaults that depend
    /// on the host name filled in.
    func publisherSettings() throws(ConfigurationError) -> MQTTPublisher.Settings {
        var name = [UInt8](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let hostname = String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)
        var password: String?
        if !passwordFile.isEmpty {
            guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                throw ConfigurationError(file: passwordFile, key: "mqtt.password_file", line: nil, reason: "cannot read: \(String(cString: strerror(errno)))")
            }
            password = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        }
        for (key, path) in [("mqtt.tls_ca", tlsCA), ("mqtt.tls_cert", tlsCert), ("mqtt.tls_key", tlsKey)] where !path.isEmpty {
            guard access(path, R_OK) == 0 else {
                throw ConfigurationError(file: path, key: key, line: nil, reason: "cannot read: \(String(cString: strerror(errno)))")
            }
        }
        return MQTTPublisher.Settings(
            host: host, port: port, clientID: clientID.isEmpty ? hostname : clientID,
            topicPrefix: topicPrefix.isEmpty ? "equivd/\(hostname)" : topicPrefix, qos: Int32(qos), keepalive: Int32(keepalive),
            username: username.isEmpty ? nil : username, password: password,
            tls: tlsCA.isEmpty ? nil : (tlsCA, tlsCert.isEmpty ? nil : tlsCert, tlsKey.isEmpty ? nil : tlsKey),
            filter: publish, queueDirectory: queueDirectory, queueBytes: queueBytes)
    }
}

extension ServiceConfiguration.Source {
    /// The capture settings these keys describe, delivering at `outputRate`, telling `onEvent`
    /// of losses, recoveries and overruns.
    func alsaCapture(outputRate: Int, onEvent: @escaping @Sendable (CaptureEvent) -> Void = { _ in }) -> ALSACaptureConfiguration {
        var alsa = ALSACaptureConfiguration()
        alsa.device = device
        alsa.configFile = alsaConfig.isEmpty ? nil : alsaConfig
        alsa.sampleRate = sampleRate
        alsa.outputRate = outputRate
        alsa.channels = channels
        if let format = ALSASampleFormat(rawValue: format) { alsa.formats = [format] }
        alsa.periodFrames = periodFrames
        alsa.bufferFrames = bufferFrames
        alsa.ringSeconds = ringSeconds
        alsa.waitForDevice = true  // a device absent at start is waited for, as one lost later
        alsa.onEvent = onEvent
        return alsa
    }
}
