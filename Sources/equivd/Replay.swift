import ArgumentParser
import EquivAudio
import EquivCore
import EquivDSP
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
        var correct = 0, labelled = 0, windows = 0, calls = 0
        var fallbacks: [Decision.Fallback: Int] = [:]
        var confusion: [String: [String: Int]] = [:]
        let started = ContinuousClock.now
        var audioSeconds = 0.0
        if !json { print("file                               time      label          p      shift st  fallback") }
        for (path, expected) in files {
            let source = try AudioFileSource(path: path, sampleRate: frontEnd.parameters.sampleRate)
            audioSeconds += source.duration
            try stream(source, through: frontEnd) { window in
                let d = recognizer.decide(window.values)
                windows += 1
                calls += d.classifierCalls
                fallbacks[d.fallback, default: 0] += 1
                if let expected {
                    labelled += 1
                    if d.label == expected { correct += 1 }
                    confusion[expected, default: [:]][d.label ?? "(none)", default: 0] += 1
                }
                if json {
                    print(Self.jsonLine(path: path, window: window, decision: d))
                } else {
                    let name = (path as NSString).lastPathComponent
                    print(String(format: "%@ %6.2fs  %@ %5.3f %+8.1f  %@",
                                 name.padding(toLength: 32, withPad: " ", startingAt: 0), window.startTime,
                                 (d.label ?? "-").padding(toLength: 13, withPad: " ", startingAt: 0), d.probability,
                                 d.shiftSemitones, d.fallback.rawValue))
                }
            }
        }
        let elapsed = started.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        var stderr = StandardError()
        let rates = Decision.Fallback.allCases.map { "\($0.rawValue) \(fallbacks[$0, default: 0])" }.joined(separator: ", ")
        print("\(windows) windows from \(files.count) files (mode \(mode.rawValue)): \(String(format: "%.2f", Double(calls) / Double(max(windows, 1)))) classifier calls per window; \(rates); \(String(format: "%.0f", audioSeconds / max(seconds, 1e-9)))x real time", to: &stderr)
        if labelled > 0 {
            print(String(format: "accuracy %.1f%% (%d of %d labelled windows)", 100 * Double(correct) / Double(labelled), correct, labelled), to: &stderr)
            for (label, row) in confusion.sorted(by: { $0.key < $1.key }) {
                print("  \(label): " + row.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "), to: &stderr)
            }
        }
    }

    static func jsonLine(path: String, window: SpectrogramWindow, decision d: Decision) -> String {
        let object: [String: Any] = [
            "type": "prediction", "v": 1, "file": path, "seq": window.index,
            "start": window.startTime, "end": window.endTime,
            "label": d.label ?? NSNull(), "p": d.probability,
            "top": d.top.prefix(3).map { ["label": $0.label, "p": $0.probability] },
            "shift_semitones": d.shiftSemitones, "canon_confidence": d.canonConfidence,
            "fallback": d.fallback.rawValue, "classifier_calls": d.classifierCalls,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
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
