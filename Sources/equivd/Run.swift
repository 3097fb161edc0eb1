import ArgumentParser
import EquivAudio
import EquivCore
import EquivService
import Foundation
import Synchronization

/// `equivd run`: the service.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Listen, classify and publish events on the Unix socket until SIGTERM.",
        discussion: """
            Settings come from --config (TOML; see Config/equivd.toml) and then from the flags, which \
            override the file. SIGHUP reloads the file and the bundle; SIGTERM stops cleanly. The log \
            goes to stderr (with journald's priority prefixes under systemd). Exit status (sysexits): \
            0 stopped, 66 the file to play cannot be opened, 69 the socket cannot be served (another \
            equivd holds it), 74 the stream failed while running, 78 configuration or bundle refused, \
            70 anything else.
            """
    )

    @Option(name: .long, help: "TOML configuration file.")
    var config: String?

    @Option(name: .long, help: "Override socket.path.")
    var socket: String?

    @Option(name: .long, help: "Override model.bundle.")
    var bundle: String?

    @Option(name: .long, help: "Override source.device (and use ALSA).")
    var device: String?

    @Option(name: .long, help: "Override source.alsa_config.")
    var alsaConfig: String?

    @Option(name: .long, help: "Replay this audio file instead of capturing (source.kind = \"file\").")
    var file: String?

    @Option(name: .long, help: "Override source.pace for a file: realtime or fast.")
    var pace: ServiceConfiguration.Pace?

    @Option(name: .long, help: "Override spool.directory.")
    var spool: String?

    /// The daemon runs in a task on Swift concurrency's threads while the main thread waits for
    /// it, so that `main` stays synchronous: with an async `main`, Debian's valgrind 3.19 crashed
    /// (an internal SIGSEGV) on every command of this binary, and `make memcheck` runs it.
    func run() throws {
        DaemonLog.bootstrap()
        let overrides = self
        let outcome = Mutex<Result<Bool, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result: Result<Bool, any Error>
            do {
                result = .success(try await Daemon.run(loadConfiguration: { () throws(ConfigurationError) -> ServiceConfiguration in
                    try overrides.configuration()
                }))
            } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        let drained: Bool
        do {
            drained = try outcome.withLock { $0 }?.get() ?? true  // set before `done` is signalled
        } catch {
            if !(error is DaemonError) { DaemonLog.logger.critical("cannot start: \(error)") }  // the daemon logged its own
            throw ExitCode(Self.exitStatus(for: error))
        }
        guard drained else {
            fflush(nil)
            _exit(0)  // inference is stuck in a model call: skip the exit-time destructors under it
        }
    }

    /// sysexits(3) codes, so that systemd's `Restart=on-failure` acts on every fatal condition and
    /// `RestartPreventExitStatus=78` keeps a bad configuration from restarting in a loop.
    static func exitStatus(for error: any Error) -> Int32 {
        switch error {
        case is ConfigurationError, is BundleError: 78  // EX_CONFIG
        case is AudioFileError: 66  // EX_NOINPUT
        case is ServerError: 69  // EX_UNAVAILABLE
        case is DaemonError: 74  // EX_IOERR
        default: 70  // EX_SOFTWARE
        }
    }

    /// The file's settings (or the defaults) with this command line's flags applied.
    func configuration() throws(ConfigurationError) -> ServiceConfiguration {
        var c = try config.map { path throws(ConfigurationError) in try ServiceConfiguration(file: path) } ?? ServiceConfiguration()
        if let socket { c.socket.path = socket }
        if let bundle { c.model.bundle = bundle }
        if let device {
            c.source.kind = .alsa
            c.source.device = device
        }
        if let alsaConfig { c.source.alsaConfig = alsaConfig }
        if let file {
            c.source.kind = .file
            c.source.file = file
        }
        if let pace { c.source.pace = pace }
        if let spool { c.spool.directory = spool }
        try c.validate(file: config ?? "command line")
        return c
    }
}

extension ServiceConfiguration.Pace: ExpressibleByArgument {}
