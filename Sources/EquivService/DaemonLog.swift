import Foundation
import Logging
import Synchronization

/// The daemon's log: swift-log onto stderr, one line per record, in the form journald reads.
///
/// Under systemd, stderr is a stream into the journal and `JOURNAL_STREAM` names it (device and
/// inode); each line then starts with its syslog priority (`<6>` info, `<4>` warning, …, as
/// sd-daemon(3) defines it), so `journalctl -p warning` filters by level and no time stamp is
/// written twice. Anywhere else lines carry a UTC time stamp and the level in words.
/// The level is `log.level` in the configuration; a reload changes it.
public enum DaemonLog {
    /// The level every handler reads, so a reload takes effect for loggers made before it.
    static let level = Atomic<UInt8>(Logger.Level.info.rank)

    /// Installs the handler for the process, once, before any logger is made.
    public static func bootstrap() {
        let journal = stderrIsJournal()
        LoggingSystem.bootstrap { label in Handler(label: label, journal: journal) }
    }

    /// Sets the level of every logger of the daemon.
    public static func setLevel(_ l: Logger.Level) { level.store(l.rank, ordering: .relaxed) }

    /// The daemon's logger.
    public static var logger: Logger { Logger(label: "equivd") }

    /// True when `JOURNAL_STREAM` ("dev:inode") is the file stderr is connected to: a child whose
    /// stderr was redirected elsewhere inherits the variable but must not write priorities.
    static func stderrIsJournal() -> Bool {
        guard let value = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        var st = stat()
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]), fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    struct Handler: LogHandler {
        let label: String
        let journal: Bool
        var metadata: Logger.Metadata = [:]

        var logLevel: Logger.Level {
            get { Logger.Level.allCases[Int(DaemonLog.level.load(ordering: .relaxed))] }
            set { DaemonLog.setLevel(newValue) }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var fields = metadata
            if let extra = event.metadata { fields.merge(extra) { $1 } }
            let suffix = fields.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            // One line per record: a message with a newline would read as two records.
            let text = "\(event.message)\(suffix)".replacingOccurrences(of: "\n", with: " ")
            let line = journal
                ? "<\(event.level.syslogPriority)>\(text)\n"
                : "\(Date().formatted(.iso8601)) \(event.level) \(label): \(text)\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

extension Logger.Level {
    /// sd-daemon(3)'s prefixes: the syslog priorities.
    var syslogPriority: Int {
        switch self {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    fileprivate var rank: UInt8 { UInt8(Logger.Level.allCases.firstIndex(of: self)!) }
}
