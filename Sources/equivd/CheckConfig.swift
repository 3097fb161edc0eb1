import ArgumentParser
import EquivDSP
import EquivService
import Foundation

/// `equivd check-config`: what `equivd run` would refuse at start, found without starting it —
/// the configuration's keys and values, then the bundle it names (manifest, hashes, front end,
/// output shapes). Nothing is opened or created.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and the model bundle it names, without starting the daemon.",
        discussion: "Exit status: 0 valid, 78 (EX_CONFIG) invalid, with the file, key and line or the bundle's file and field."
    )

    @Argument(help: "The TOML configuration (default: the defaults, as `equivd run` with no --config).")
    var file: String?

    func run() throws {
        do {
            let c = try file.map { path throws(ConfigurationError) in try ServiceConfiguration(file: path) } ?? ServiceConfiguration()
            try c.validate(file: file ?? "defaults")
            let recognition = try Recognition(configuration: c.model, frontEnd: FrontEndParameters())
            print("\(file ?? "defaults"): valid; bundle \(c.model.bundle) (\(recognition.describedModels)), source \(c.source.kind.rawValue), socket \(c.socket.path)")
        } catch {
            FileHandle.standardError.write(Data("equivd: \(error)\n".utf8))
            throw ExitCode(78)
        }
    }
}
