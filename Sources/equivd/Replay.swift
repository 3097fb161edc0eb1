import ArgumentParser
import EquivAudio
import EquivCore
import EquivDSP
import EquivProtocol
import EquivService
import Foundation

/// `equivd replay`: the daemon's recognition path over audio files, with accuracy when labels
/// are known (a labels CSV: path,label,…).
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify audio files window by window through the service's code path.",
        discussion: "Inputs are audio files, folders of them, or a CSV whose first two columns are path,label."
    )

    @Argument(help: "Audio files, folders, or a labels CSV (path,label,…).")
    var inputs: [String]

    @Option(name: .long, help: "Model bundle folder.")
    var bundle = "Models"

    @Option(name: .long, help: "vanilla, canon, topk (the service) or groupavg.")
    var mode: Recognizer.Mode = .topk

    @Flag(name: .long, help: "One JSON object per window instead of a table.")
    var json = false

    func run() throws {
        let frontEnd = try FrontEnd()
        let recognizer = try Recognizer(bundle: try ModelBundle(directory: bundle, frontEnd: frontEnd.parameters), mode: mode)
        let files = try ReplayInput.expand(inputs)
        let tally = ReplayTally()
        let started = ContinuousClock.now
        var audioSeconds = 0.0
        if !json { print("file                               time      label          p      shift st  fallback") }
        for (path, expected) in files {
            let source = try AudioFileSource(path: path, sampleRate: frontEnd.parameters.sampleRate)
            audioSeconds += source.duration
            frontEnd.reset()
            let json = self.json
            // The service's pipeline, waiting instead of dropping: a file can be read at any pace.
            let pipeline = Pipeline(
                source: source, sourceName: path, frontEnd: frontEnd, recognizer: recognizer, windowQueue: 8,
                dropWhenFull: false, historySeconds: 0,
                onDecision: { window, decision in
                    let latency = window.completedAt.duration(to: .now)
                    let event = PredictionEvent(
                        window: window, decision: decision, source: path,
                        latencyMs: Double(latency.components.attoseconds) * 1e-15 + Double(latency.components.seconds) * 1e3)
                    tally.add(event, expected: expected)
                    if json {
                        print(EventProtocol.line(event), terminator: "")
                    } else {
                        let name = (path as NSString).lastPathComponent
                        print(String(format: "%@ %6.2fs  %@ %5.3f %+8.1f  %@",
                                     name.padding(toLength: 32, withPad: " ", startingAt: 0), event.streamStart,
                                     (event.label ?? "-").padding(toLength: 13, withPad: " ", startingAt: 0), event.p,
                                     event.shiftSemitones, event.fallback))
                    }
                })
            pipeline.start()
            pipeline.wait()
            if let error = pipeline.error { throw ValidationError(error) }
        }
        let elapsed = started.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        var stderr = StandardError()
        let t = tally
        let rates = Decision.Fallback.allCases.map { "\($0.rawValue) \(t.fallbacks[$0.rawValue, default: 0])" }.joined(separator: ", ")
        print("\(t.windows) windows from \(files.count) files (mode \(mode.rawValue)): \(String(format: "%.2f", Double(t.calls) / Double(max(t.windows, 1)))) classifier calls per window; \(rates); \(String(format: "%.0f", audioSeconds / max(seconds, 1e-9)))x real time", to: &stderr)
        if t.labelled > 0 {
            print(String(format: "accuracy %.1f%% (%d of %d labelled windows)", 100 * Double(t.correct) / Double(t.labelled), t.correct, t.labelled), to: &stderr)
            for (label, row) in t.confusion.sorted(by: { $0.key < $1.key }) {
                print("  \(label): " + row.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "), to: &stderr)
            }
        }
    }
}

/// Counts over a replay; written only on the pipeline's inference queue, read after it finished.
private final class ReplayTally: @unchecked Sendable {
    var windows = 0, calls = 0, correct = 0, labelled = 0
    var fallbacks: [String: Int] = [:]
    var confusion: [String: [String: Int]] = [:]

    func add(_ event: PredictionEvent, expected: String?) {
        windows += 1
        calls += event.classifierCalls
        fallbacks[event.fallback, default: 0] += 1
        if let expected {
            labelled += 1
            if event.label == expected { correct += 1 }
            confusion[expected, default: [:]][event.label ?? "(none)", default: 0] += 1
        }
    }
}

extension Recognizer.Mode: ExpressibleByArgument {}
extension Decision.Fallback: CaseIterable {
    public static var allCases: [Decision.Fallback] { [.none, .topk, .abstain, .idle] }
}

/// Inputs of `replay`: audio files and folders (no labels) or a CSV of path,label rows.
enum ReplayInput {
    static func expand(_ inputs: [String]) throws -> [(path: String, label: String?)] {
        var result: [(String, String?)] = []
        for input in inputs {
            if input.lowercased().hasSuffix(".csv") {
                guard let text = try? String(contentsOfFile: input, encoding: .utf8) else {
                    throw ValidationError("\(input): cannot read")
                }
                let folder = (input as NSString).deletingLastPathComponent
                for (n, line) in text.split(whereSeparator: \.isNewline).enumerated().dropFirst() {
                    let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                    guard let path = fields.first, !path.isEmpty else {
                        throw ValidationError("\(input):\(n + 1): no path")
                    }
                    let label = fields.count > 1 && !fields[1].isEmpty ? fields[1] : nil
                    result.append(((folder as NSString).appendingPathComponent(path), label))
                }
            } else {
                result += try AudioFileList.expand([input]).map { ($0, nil) }
            }
        }
        return result
    }
}
