import ArgumentParser
import EquivCore
import EquivDSP
import EquivProtocol
import EquivService
import Foundation

@main
struct Equivd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "equivd",
        abstract: "Pitch-robust machine-sound classification for production lines.",
        subcommands: [Run.self, CheckConfig.self, Replay.self, Inspect.self, Features.self, Model.self]
    )

    @Flag(name: .long, help: "Print the version, the git commit, and the bundle the installed configuration (/etc/equivd/equivd.toml, else the defaults) serves.")
    var version = false

    func run() throws {
        guard version else { throw CleanExit.helpRequest(self) }
        print(EquivdVersion.line(tool: "equivd"))
        let path = "/etc/equivd/equivd.toml"
        let bundle = FileManager.default.fileExists(atPath: path) ? (try? ServiceConfiguration(file: path))?.model.bundle : ServiceConfiguration().model.bundle
        guard let bundle else { return print("bundle: \(path) does not parse (equivd check-config \(path) says why)") }
        do {
            let loaded = try ModelBundle(directory: bundle, frontEnd: FrontEndParameters())
            print("bundle \(bundle): " + loaded.manifest.models.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.sha256.prefix(12))" }.joined(separator: ", "))
        } catch {
            print("bundle \(bundle): not loadable: \(error)")
        }
    }
}
