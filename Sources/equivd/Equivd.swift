import ArgumentParser
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
        let configuration = FileManager.default.fileExists(atPath: path) ? try? ServiceConfiguration(file: path) : ServiceConfiguration()
        guard let model = configuration?.model else { return print("bundle: \(path) does not parse (equivd check-config \(path) says why)") }
        do {
            print("bundle \(model.bundle): \(try Recognition(configuration: model, frontEnd: FrontEndParameters()).describedModels)")
        } catch {
            print("bundle \(model.bundle): not loadable: \(error)")
        }
    }
}
