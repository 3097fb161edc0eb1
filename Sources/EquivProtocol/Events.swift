import Foundation

/// The event protocol of docs/architecture.md §5: one JSON object per line, each with `type` and `v`.
/// These types are the schema (docs/protocol.md); the daemon encodes them and equivctl decodes
/// them, so the two cannot drift. Field names are stable once released.
public enum EventProtocol {
    public static let version = 1

    /// Encodes an event as one line, `\n` included. Keys are snake_case and sorted.
    public static func line(_ event: some Encodable) -> String {
        // Every event type is plain data; encoding can only fail on a non-finite Double, which the
        // daemon never puts in an event (it clamps), so a failure is a programming error.
        let data = try! encoder.encode(event)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Reads the `type` field of a line, or nil when the line is not a JSON object with one.
    public static func type(of line: Substring) -> String? {
        (try? decoder.decode(TypeOnly.self, from: Data(line.utf8)))?.type
    }

    public static func decode<Event: Decodable>(_ type: Event.Type, from line: Substring) throws -> Event {
        try decoder.decode(type, from: Data(line.utf8))
    }

    private struct TypeOnly: Decodable { let type: String }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    private static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()
}

/// Sent once to each client as it connects.
public struct HelloEvent: Codable, Sendable {
    public var type = "hello"
    public var v = EventProtocol.version
    public var daemon: String
    /// Model file name → the first 12 hex digits of its SHA-256: what the daemon runs.
    public var models: [String: String]
    public var classes: [String]
    /// The front-end parameters the models were trained with, as bundle.json names them.
    public var frontEnd: [String: Double]
    public var mode: RecognitionMode
    public var source: String

    public init(
        daemon: String, models: [String: String], classes: [String], frontEnd: [String: Double], mode: RecognitionMode,
        source: String
    ) {
        self.daemon = daemon
        self.models = models
        self.classes = classes
        self.frontEnd = frontEnd
        self.mode = mode
        self.source = source
    }
}

/// One decision per spectrogram window.
public struct PredictionEvent: Codable, Sendable, Equatable {
    public struct Candidate: Codable, Sendable, Equatable {
        public var label: String
        public var p: Double
        public init(label: String, p: Double) {
            self.label = label
            self.p = p
        }
    }

    public var type = "prediction"
    public var v = EventProtocol.version
    /// Window number in this stream, from 0; a gap means windows were dropped.
    public var seq: Int
    /// Where the audio came from: the ALSA device name or the file path.
    public var source: String
    /// Window start and end in stream time (seconds of audio since the stream began).
    public var streamStart: Double
    public var streamEnd: Double
    /// Window start and end in wall time (Unix seconds), estimated from when the samples arrived.
    public var wallStart: Double
    public var wallEnd: Double
    /// The decided class, or nil for `abstain` and `idle`.
    public var label: String?
    /// Probability of `label` (or of the best class when there is none).
    public var p: Double
    /// The best classes, most probable first.
    public var top: [Candidate]
    /// The canonicalizer's speed reading: how far the input sits from the canonical pitch.
    public var shiftSemitones: Double
    /// Mode `partial` only (else nil): how far the part that stays at its frequency was moved back;
    /// 0 when it stayed (the machine changed speed), `shiftSemitones` when it moved with the rest
    /// (the recording was resampled).
    public var fixedShiftSemitones: Double?
    /// Canonicalizer max-p, top-2 margin and entropy (nats) of its shift distribution.
    public var canonConfidence: Double
    public var canonMargin: Double
    public var canonEntropy: Double
    public var fallback: Fallback
    public var classifierCalls: Int
    /// From the arrival of the block that completed the window to the event's encoding.
    public var latencyMs: Double
    /// Audio lost in capture since the previous prediction (the PC fell behind, the device
    /// overran); 0 when the sound ran on unbroken. No window spans a gap.
    public var gapBeforeMs: Double
    /// The spooled WAV of an abstained window, when clip spooling is on.
    public var clip: String?
    /// This daemon run, 16 hex digits drawn at start (null from `equivd replay`): `(run, seq)`
    /// names a window uniquely across restarts, the key a subscriber de-duplicates MQTT's
    /// at-least-once deliveries by.
    public var run: String?

    public init(
        seq: Int, source: String, streamStart: Double, streamEnd: Double, wallStart: Double, wallEnd: Double,
        label: String?, p: Double, top: [Candidate], shiftSemitones: Double, canonConfidence: Double,
        canonMargin: Double, canonEntropy: Double, fallback: Fallback, classifierCalls: Int, latencyMs: Double,
        gapBeforeMs: Double = 0, clip: String? = nil, run: String? = nil, fixedShiftSemitones: Double? = nil
    ) {
        self.seq = seq
        self.source = source
        self.streamStart = streamStart
        self.streamEnd = streamEnd
        self.wallStart = wallStart
        self.wallEnd = wallEnd
        self.label = label
        self.p = p
        self.top = top
        self.shiftSemitones = shiftSemitones
        self.fixedShiftSemitones = fixedShiftSemitones
        self.canonConfidence = canonConfidence
        self.canonMargin = canonMargin
        self.canonEntropy = canonEntropy
        self.fallback = fallback
        self.classifierCalls = classifierCalls
        self.latencyMs = latencyMs
        self.gapBeforeMs = gapBeforeMs
        self.clip = clip
        self.run = run
    }

    private enum CodingKeys: String, CodingKey {
        case type, v, seq, source, streamStart, streamEnd, wallStart, wallEnd, label, p, top, shiftSemitones, fixedShiftSemitones
        case canonConfidence, canonMargin, canonEntropy, fallback, classifierCalls, latencyMs, gapBeforeMs, clip, run
    }

    /// Like the synthesized one, but `label`, `fixed_shift_semitones`, `clip` and `run` are always present (null when
    /// absent), so every prediction has the same keys.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(v, forKey: .v)
        try c.encode(seq, forKey: .seq)
        try c.encode(source, forKey: .source)
        try c.encode(streamStart, forKey: .streamStart)
        try c.encode(streamEnd, forKey: .streamEnd)
        try c.encode(wallStart, forKey: .wallStart)
        try c.encode(wallEnd, forKey: .wallEnd)
        try c.encode(label, forKey: .label)
        try c.encode(p, forKey: .p)
        try c.encode(top, forKey: .top)
        try c.encode(shiftSemitones, forKey: .shiftSemitones)
        try c.encode(fixedShiftSemitones, forKey: .fixedShiftSemitones)
        try c.encode(canonConfidence, forKey: .canonConfidence)
        try c.encode(canonMargin, forKey: .canonMargin)
        try c.encode(canonEntropy, forKey: .canonEntropy)
        try c.encode(fallback, forKey: .fallback)
        try c.encode(classifierCalls, forKey: .classifierCalls)
        try c.encode(latencyMs, forKey: .latencyMs)
        try c.encode(gapBeforeMs, forKey: .gapBeforeMs)
        try c.encode(clip, forKey: .clip)
        try c.encode(run, forKey: .run)
    }
}

/// The MQTT publisher's state in `status`.
public struct MQTTStatus: Codable, Sendable, Equatable {
    public var connected = false
    /// Messages waiting in the on-disk queue (sent but not yet acknowledged included), and their bytes.
    public var queued = 0
    public var queuedBytes = 0
    /// Acknowledged by the broker; connection attempts that failed; dropped, oldest first, past
    /// `mqtt.queue_bytes`.
    public var sent = 0
    public var failed = 0
    public var dropped = 0
    public var lastError: String? = nil

    public init() {}
}

/// The daemon's health, every `status_interval` seconds and in reply to `{"cmd":"status"}`.
public struct StatusEvent: Codable, Sendable {
    public struct Client: Codable, Sendable {
        public var id: Int
        /// Events waiting for this client, and events it lost because it did not read.
        public var queued: Int
        public var dropped: Int
        public init(id: Int, queued: Int, dropped: Int) {
            self.id = id
            self.queued = queued
            self.dropped = dropped
        }
    }

    public var type = "status"
    public var v = EventProtocol.version
    public var uptimeSeconds = 0.0
    /// Seconds of audio analysed per second of wall time since the start.
    public var realTimeFactor = 0.0
    public var audioSeconds = 0.0
    public var windows = 0
    /// Samples waiting in the capture ring and windows waiting for inference.
    public var queuedSamples = 0
    public var queuedWindows = 0
    /// Samples lost in capture gaps (the ring overwrote them, or the device overran), the gaps
    /// they fell in, and windows the inference queue dropped (oldest first).
    public var droppedSamples = 0
    public var gaps = 0
    public var droppedWindows = 0
    public var xruns = 0
    public var reconnects = 0
    /// NaN/Inf samples a float device delivered, replaced with 0.
    public var nonFiniteSamples = 0
    public var clients: [Client] = []
    /// Clients disconnected because they stopped reading for too long.
    public var clientsDisconnected = 0
    /// Connections refused because `socket.max_clients` were connected.
    public var clientsRefused = 0
    public var models: [String: String] = [:]
    public var clips = 0
    public var lastError: String? = nil
    /// The MQTT publisher, when `[mqtt]` is configured.
    public var mqtt: MQTTStatus? = nil

    /// All zero: the daemon fills in what it knows, the server the clients.
    public init() {}
}

/// Something went wrong: a bad request (to that client only), events this client lost, or a
/// daemon-side problem such as a failed reload (to everyone).
public struct ErrorEvent: Codable, Sendable {
    public var type = "error"
    public var v = EventProtocol.version
    /// A stable identifier: `bad_request`, `request_too_long` (the connection is then closed),
    /// `too_many_clients` (likewise), `events_dropped`, `permission_denied`, `reload_failed`,
    /// `clip_failed`, `mqtt`.
    public var code: String
    public var message: String
    /// For `events_dropped`: how many events this client lost since it was last told.
    public var dropped: Int?

    public init(code: String, message: String, dropped: Int? = nil) {
        self.code = code
        self.message = message
        self.dropped = dropped
    }
}

/// The reply to `{"cmd":"reload"}`.
public struct ReloadEvent: Codable, Sendable {
    public var type = "reload"
    public var v = EventProtocol.version
    public var ok: Bool
    public var message: String
    public init(ok: Bool, message: String) {
        self.ok = ok
        self.message = message
    }
}

/// What a client may send, one JSON object per line.
public struct Request: Codable, Sendable, Equatable {
    public enum Command: String, Codable, Sendable { case status, reload }
    public var cmd: Command
    public init(cmd: Command) { self.cmd = cmd }
}
