import ArgumentParser

@main
struct Equivctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "equivctl",
        abstract: "Watch and control a running equivd."
    )
}
