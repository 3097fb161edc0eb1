import ArgumentParser
import EquivProtocol
import Foundation

@main
struct Equivctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "equivctl",
        abstract: "Watch and control a running equivd.",
        discussion: """
            Exit status: 0 success, 1 a failed request, \(ExitCode.notRunning.rawValue) equivd is not \
            running (no socket, or nobody listening), \(ExitCode.permissionDenied.rawValue) permission \
            denied on the socket.
            """,
        version: EquivdVersion.line(tool: "equivctl"),
        subcommands: [Tail.self, Status.self, Reload.self]
    )
}

/// Where the daemon listens; shared by every subcommand.
struct SocketOption: ParsableArguments {
    @Option(name: .long, help: "The daemon's socket (default: $EQUIVD_SOCKET or /run/equivd/equivd.sock).")
    var socket = ProcessInfo.processInfo.environment["EQUIVD_SOCKET"] ?? "/run/equivd/equivd.sock"

    func connect(timeout: Double = 0) throws -> EventConnection {
        do {
            return try EventConnection(path: socket, timeout: timeout)
        } catch {
            throw Failure(error)
        }
    }
}

extension ExitCode {
    /// sysexits.h's EX_UNAVAILABLE and EX_NOPERM.
    static let notRunning = ExitCode(69)
    static let permissionDenied = ExitCode(77)
}

/// Prints a connection problem and exits with the code that names it.
struct Failure: Error {
    let error: ConnectionError
    init(_ error: ConnectionError) { self.error = error }

    var exitCode: ExitCode {
        switch error {
        case .notRunning, .refused: .notRunning
        case .permissionDenied: .permissionDenied
        case .system, .timedOut: .failure
        }
    }

    func exit() -> Never {
        FileHandle.standardError.write(Data("equivctl: \(error)\n".utf8))
        Equivctl.exit(withError: exitCode)
    }
}

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow predictions as they happen; reconnects when the daemon restarts.")

    @OptionGroup var socket: SocketOption

    @Flag(name: .long, help: "Pass the daemon's JSON lines through unchanged.")
    var json = false

    @Option(name: .long, help: "Only predictions with this label (repeatable).")
    var label: [String] = []

    @Option(name: .long, help: "Only predictions with this fallback (repeatable).")
    var fallback: [Fallback] = []

    @Flag(name: .long, help: "Exit when the connection ends instead of reconnecting.")
    var noReconnect = false

    @Option(name: .long, help: "Exit after exactly this many predictions.")
    var count: Int?

    func validate() throws {
        if let count, count < 0 { throw ValidationError("--count must be 0 or more, got \(count)") }
    }

    func run() throws {
        if count == 0 { return }
        let colour = !json && isatty(STDOUT_FILENO) == 1
        var shown = 0
        var announcedWait = false
        var clock = WallClock()
        while true {
            let connection: EventConnection
            do {
                connection = try socket.connect()
                announcedWait = false
            } catch let failure as Failure {
                if noReconnect || failure.exitCode == .permissionDenied { failure.exit() }
                if !announcedWait { note("\(failure.error); waiting for it") }
                announcedWait = true
                Thread.sleep(forTimeInterval: 0.5)
                continue
            }
            do {
                while let line = try connection.readLine() {
                    guard let type = EventProtocol.type(of: line) else { continue }
                    if type == "prediction" {
                        guard let event = try? EventProtocol.decode(PredictionEvent.self, from: line) else { continue }
                        if !json && event.gapBeforeMs > 0 {
                            note(String(format: "%.2f s of audio lost in capture before this window", event.gapBeforeMs / 1000))
                        }
                        guard passes(event) else { continue }
                        if !json, let day = clock.newDay(event.wallEnd) { print(day) }
                        print(json ? String(line) : format(event, colour: colour, clock: clock))
                        fflush(nil)
                        shown += 1
                        if let count, shown >= count { return }
                    } else if json {
                        print(line)
                        fflush(nil)
                    } else if type == "hello", let hello = try? EventProtocol.decode(HelloEvent.self, from: line) {
                        if let unknown = label.first(where: { !hello.classes.contains($0) }) {
                            FileHandle.standardError.write(Data(
                                "equivctl: --label \(unknown): the daemon's classes are \(hello.classes.joined(separator: ", "))\n".utf8))
                            Equivctl.exit(withError: ExitCode(64))  // EX_USAGE
                        }
                        note("connected to equivd: \(hello.source), mode \(hello.mode.rawValue), models " + hello.models.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                    } else if type == "error", let error = try? EventProtocol.decode(ErrorEvent.self, from: line) {
                        note("error (\(error.code)): \(error.message)")
                        if error.code == "too_many_clients" {
                            if noReconnect { Equivctl.exit(withError: ExitCode.notRunning) }
                            Thread.sleep(forTimeInterval: 1)  // a slot frees when another client leaves
                        }
                    }
                }
            } catch {
                note("\(error)")
            }
            if noReconnect { return }
            note("connection closed; reconnecting")
        }
    }

    private func passes(_ e: PredictionEvent) -> Bool {
        (label.isEmpty || e.label.map(label.contains) == true) && (fallback.isEmpty || fallback.contains(e.fallback))
    }

    private func format(_ e: PredictionEvent, colour: Bool, clock: WallClock) -> String {
        let time = clock.time(e.wallEnd)
        let label = (e.label ?? "-").padding(toLength: 13, withPad: " ", startingAt: 0)
        let text = String(format: "%@  %@ p %.2f  shift %+5.1f st  canon %.2f  %@", time, label, e.p, e.shiftSemitones, e.canonConfidence, e.fallback.rawValue)
        guard colour else { return text }
        let code = switch e.fallback {
        case .none: "32"  // green
        case .topk: "33"  // yellow
        case .abstain: "31"  // red
        case .idle: "2"  // dim
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's health on one screen.")

    @OptionGroup var socket: SocketOption

    @Flag(name: .long, help: "Print the status event as JSON.")
    var json = false

    func run() throws {
        let line: Substring
        do {
            line = try socket.connect(timeout: 5).request(Request(cmd: .status), replyTypes: ["status"])
        } catch let failure as Failure {
            failure.exit()
        } catch let error as ConnectionError {
            Failure(error).exit()
        }
        if json {
            print(line)
            return
        }
        let s = try EventProtocol.decode(StatusEvent.self, from: line)
        let clientDrops = s.clients.reduce(0) { $0 + $1.dropped }
        print("""
            uptime          \(String(format: "%.0f", s.uptimeSeconds)) s
            real time       \(String(format: "%.2f", s.realTimeFactor))× (\(String(format: "%.1f", s.audioSeconds)) s of audio, \(s.windows) windows)
            queues          \(s.queuedSamples) samples, \(s.queuedWindows) windows waiting
            lost audio      \(s.gaps) gaps, \(s.droppedSamples) samples; \(s.droppedWindows) windows dropped
            capture         \(s.xruns) xruns, \(s.reconnects) reconnects
            clients         \(s.clients.count) connected, \(clientDrops) events dropped for slow readers, \(s.clientsDisconnected) disconnected
            models          \(s.models.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            clips spooled   \(s.clips)
            last error      \(s.lastError ?? "none")
            """)
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload the configuration and the model bundle (the old ones stay if the new ones fail).")

    @OptionGroup var socket: SocketOption

    func run() throws {
        var line: Substring
        do {
            let connection = try socket.connect(timeout: 30)
            line = try connection.request(Request(cmd: .reload), replyTypes: ["reload", "error"])
            // Errors for everyone (a failed reload is also broadcast) are not the answer; a refusal is.
            while let error = try? EventProtocol.decode(ErrorEvent.self, from: line), error.type == "error" {
                if error.code == "permission_denied" {
                    FileHandle.standardError.write(Data("equivctl: \(socket.socket): \(error.message)\n".utf8))
                    throw ExitCode.permissionDenied
                }
                guard let next = try connection.readLine() else { throw ConnectionError.notRunning(path: socket.socket, reason: "connection closed before the reply") }
                line = next
            }
        } catch let failure as Failure {
            failure.exit()
        } catch let error as ConnectionError {
            Failure(error).exit()
        }
        let reply = try EventProtocol.decode(ReloadEvent.self, from: line)
        print(reply.message)
        if !reply.ok { throw ExitCode.failure }
    }
}

private func note(_ text: String) {
    FileHandle.standardError.write(Data("equivctl: \(text)\n".utf8))
}

extension Fallback: ExpressibleByArgument {}

/// Local wall time as `tail` prints it: 24-hour time of day on each line, and the date on a line
/// of its own whenever it changes.
struct WallClock {
    private let timeFormat: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "HH:mm:ss.S"
        return f
    }()
    private let dayFormat: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd"
        return f
    }()
    private var day = ""

    func time(_ unixSeconds: Double) -> String { timeFormat.string(from: Date(timeIntervalSince1970: unixSeconds)) }

    /// The date line to print before an event at `unixSeconds`, when its day differs from the last.
    mutating func newDay(_ unixSeconds: Double) -> String? {
        let today = dayFormat.string(from: Date(timeIntervalSince1970: unixSeconds))
        defer { day = today }
        return today == day ? nil : "── \(today) ──"
    }
}
