import ArgumentParser

@main
struct Equivd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "equivd",
        abstract: "Pitch-robust machine-sound classification for production lines.",
        subcommands: [Run.self, CheckConfig.self, Replay.self, Inspect.self, Features.self, Model.self]
    )
}
