import ArgumentParser

@main
struct Equivd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "equivd",
        abstract: "Pitch-robust machine-sound classification for production lines.",
        subcommands: [Run.self, Replay.self, Features.self, Model.self]
    )
}
