import ArgumentParser
import EquivAudio
import EquivCore
import EquivDSP
import EquivProtocol
import EquivService
import EquivView
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

    @Option(name: .long, help: "vanilla, canon, topk (the service), groupavg or partial (a bundle with a separator).")
    var mode: RecognitionMode = .topk

    @Flag(name: .long, help: "One JSON object per window (the socket's prediction events) instead of a table.")
    var json = false

    @Option(name: .long, help: "Override bundle.json's canonicalizer max-p threshold (the top-K fallback).")
    var canonicalizerMinP: Double?

    @Option(name: .long, help: "Override bundle.json's classifier max-p threshold (abstain); 0 never abstains.")
    var classifierMinP: Double?

    @Flag(name: .long, help: "No per-window output; the summary only.")
    var quiet = false

    @Option(name: .long, help: "Write the summary (accuracy, confusion, fallback rates, timing) as JSON to this file.")
    var report: String?

    @Option(name: .long, help: ArgumentHelp(
        "Write a self-contained HTML report: accuracy, confusion, a timeline per file, the wrong and abstained windows.",
        valueName: "report.html"))
    var html: String?

    @Option(name: .long, help: "With --html: at most this many wrong or abstained windows get their inspect view (about 50 KB each).")
    var htmlViews = 30

    func run() throws {
        let frontEnd = try FrontEnd()
        let rate = frontEnd.parameters.sampleRate
        var model = ServiceConfiguration.Model()
        model.bundle = bundle
        model.mode = mode
        model.canonicalizerMinP = canonicalizerMinP
        model.classifierMinP = classifierMinP
        let recognition = try Recognition(configuration: model, frontEnd: frontEnd.parameters)
        let files = try ReplayInput.expand(inputs)
        var stderr = StandardError()
        let classes = Set(recognition.recognizer.manifest.classes)
        for label in Set(files.compactMap(\.label)).subtracting(classes).sorted() {
            print("equivd: warning: label \"\(label)\" is not one of the bundle's classes (\(classes.sorted().joined(separator: ", "))): its windows count as wrong", to: &stderr)
        }
        let tally = ReplayTally()
        let pages = html.map { _ in ReportCollector(maxViews: htmlViews) }
        var failed = 0
        let progress = Progress(total: files.count, enabled: !json && isatty(STDERR_FILENO) == 1)
        let started = ContinuousClock.now
        var audioSeconds = 0.0
        let printWindows = !quiet
        if printWindows && !json { print("file                               time      label          p      shift st  fallback") }
        for (index, (path, expected)) in files.enumerated() {
            defer { progress.update(done: index + 1) }
            let source: AudioFileSource
            do {
                source = try AudioFileSource(path: path, sampleRate: rate, minimumSamples: frontEnd.parameters.windowSpanSamples)
            } catch {
                print("equivd: \(error)", to: &stderr)
                failed += 1
                continue
            }
            let span = Double(frontEnd.parameters.windowSpanSamples) / Double(rate)
            if source.duration < span {
                print(String(format: "equivd: warning: %@: %.3f s is shorter than one window (%.3f s): padded with silence to one window", path, source.duration, span), to: &stderr)
            }
            audioSeconds += source.duration
            frontEnd.reset()
            pages?.files.append(.init(path: path, expected: expected))
            pages?.files[pages!.files.count - 1].duration = source.duration
            let json = self.json
            let parameters = frontEnd.parameters
            // The service's pipeline, waiting instead of dropping: a file can be read at any pace.
            let pipeline = Pipeline(
                source: source, sourceName: path, frontEnd: frontEnd, recognition: recognition, windowQueue: 8,
                dropWhenFull: false)
            pipeline.start(
                onDecision: { window, decision in
                    let event = PredictionEvent(
                        window: window, decision: decision, source: path, sampleRate: rate)
                    tally.add(event, expected: expected)
                    pages?.add(window: window, event: event, expected: expected, recognition: recognition, frontEnd: parameters)
                    guard printWindows else { return }
                    if json {
                        print(EventProtocol.line(event), terminator: "")
                    } else {
                        let name = (path as NSString).lastPathComponent
                        print(String(format: "%@ %6.2fs  %@ %5.3f %+8.1f  %@",
                                     name.padding(toLength: 32, withPad: " ", startingAt: 0), event.streamStart,
                                     (event.label ?? "-").padding(toLength: 13, withPad: " ", startingAt: 0), event.p,
                                     event.shiftSemitones, event.fallback.rawValue))
                    }
                })
            pipeline.wait()
            if let error = pipeline.error {
                print("equivd: \(path): \(error)", to: &stderr)
                failed += 1
            }
        }
        progress.finish()
        let elapsed = started.duration(to: .now)
        let seconds = elapsed / .seconds(1)
        let summary = tally.summary(
            mode: mode, files: files.count, failedFiles: failed, audioSeconds: audioSeconds, wallSeconds: seconds)
        print(summary.text, to: &stderr)
        if let report {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do {
                try encoder.encode(summary).write(to: URL(fileURLWithPath: report))
            } catch {
                throw ValidationError("\(report): cannot write the report: \(error.localizedDescription)")
            }
        }
        if let html, let pages {
            let page = ReplayReportPage(
                classes: recognition.recognizer.manifest.classes, summaryText: summary.text, accuracy: summary.accuracy,
                confusion: summary.confusion, fallbackRates: summary.fallbackRates, files: pages.files, viewsLeftOut: pages.leftOut)
            do {
                try page.html(title: "equivd replay: \(files.count) files, mode \(mode.rawValue)").write(toFile: html, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("\(html): cannot write the report: \(error.localizedDescription)")
            }
        }
        if failed > 0 { throw ExitCode(65) }  // EX_DATAERR: some input could not be read
    }
}

/// The end of a replay: what `--report` writes and the lines printed on stderr.
struct ReplaySummary: Encodable {
    var mode: RecognitionMode
    var files: Int
    /// Files that could not be read (each named on stderr).
    var failedFiles: Int
    var windows: Int
    /// Labelled windows that were not idle: the ones accuracy is over.
    var labelledWindows: Int
    /// Labelled windows gated as idle (silence is not classified, here as in training).
    var idleLabelledWindows: Int
    /// Percent of labelled windows, idle ones left out, whose label is the expected one; nil
    /// without labels. An abstained window counts as wrong.
    var accuracy: Double?
    /// Expected label → decided label (or "(none)" when abstained, "(idle)") → windows.
    var confusion: [String: [String: Int]]
    /// Fallback → share of windows.
    var fallbackRates: [String: Double]
    var classifierCallsPerWindow: Double
    var audioSeconds: Double
    var wallSeconds: Double
    var realTimeFactor: Double
    var msPerWindow: Double

    var text: String {
        var lines = [String(
            format: "%d windows from %d files (mode %@): %.2f classifier calls per window; %@; %.0fx real time, %.2f ms per window",
            windows, files, mode.rawValue, classifierCallsPerWindow,
            Fallback.allCases.map { String(format: "%@ %.1f%%", $0.rawValue, 100 * (fallbackRates[$0.rawValue] ?? 0)) }.joined(separator: ", "),
            realTimeFactor, msPerWindow)]
        if failedFiles > 0 { lines.append("\(failedFiles) of \(files) files could not be read (named above)") }
        if let accuracy {
            lines.append(String(format: "accuracy %.1f%% (%d labelled windows, %d more idle)", accuracy, labelledWindows, idleLabelledWindows))
            for (label, row) in confusion.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(label): " + row.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// A one-line progress bar on stderr, for long replays on a terminal.
final class Progress {
    let total: Int
    let enabled: Bool
    private var last = -1

    init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled && total > 1
    }

    func update(done: Int) {
        guard enabled else { return }
        let percent = 100 * done / total
        guard percent != last else { return }
        last = percent
        let width = 30
        let filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(percent)% \(done)/\(total) files".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// What the HTML report needs of each window; written only on the inference queue.
private final class ReportCollector: @unchecked Sendable {
    var files: [ReplayReportPage.File] = []
    var leftOut = 0
    private var views = 0
    private let maxViews: Int

    init(maxViews: Int) { self.maxViews = maxViews }

    func add(window: AnalysedWindow, event: PredictionEvent, expected: String?, recognition: Recognition, frontEnd: FrontEndParameters) {
        let i = files.count - 1
        files[i].points.append(.init(
            start: event.streamStart, end: event.streamEnd, label: event.label, p: Float(event.p),
            shiftSemitones: event.shiftSemitones, fallback: event.fallback.rawValue))
        let wrong = expected != nil && event.fallback != .idle && event.label != expected
        guard wrong || event.fallback == .abstain else { return }
        var view: String?
        if views < maxViews {
            views += 1
            let inspection = window.values.withUnsafeBufferPointer { values in
                window.audio.withUnsafeBufferPointer { recognition.recognizer.inspect(values, audio: $0) }
            }
            do {
                view = try InspectView(
                    inspection: inspection, source: (files[i].path as NSString).lastPathComponent, seq: window.seq,
                    startTime: window.streamStart, endTime: window.streamEnd, frontEnd: frontEnd
                ).html(expected: expected)
            } catch {
                view = "<p class=\"wrong\">window \(window.seq): not drawn: \(HTML.escape("\(error)"))</p>"
            }
        } else {
            leftOut += 1
        }
        files[i].flagged.append((window.seq, event.streamStart, event.label ?? "abstained", view))
    }
}

/// Counts over a replay; written only on the pipeline's inference queue, read after it finished.
private final class ReplayTally: @unchecked Sendable {
    var windows = 0, calls = 0, correct = 0, labelled = 0, idleLabelled = 0
    var fallbacks: [Fallback: Int] = [:]
    var confusion: [String: [String: Int]] = [:]

    func summary(mode: RecognitionMode, files: Int, failedFiles: Int, audioSeconds: Double, wallSeconds: Double) -> ReplaySummary {
        ReplaySummary(
            mode: mode, files: files, failedFiles: failedFiles, windows: windows, labelledWindows: labelled,
            idleLabelledWindows: idleLabelled,
            accuracy: labelled > 0 ? 100 * Double(correct) / Double(labelled) : nil, confusion: confusion,
            fallbackRates: Dictionary(uniqueKeysWithValues: fallbacks.map { ($0.key.rawValue, Double($0.value) / Double(max(windows, 1))) }),
            classifierCallsPerWindow: Double(calls) / Double(max(windows, 1)), audioSeconds: audioSeconds,
            wallSeconds: wallSeconds, realTimeFactor: audioSeconds / max(wallSeconds, 1e-9),
            msPerWindow: 1000 * wallSeconds / Double(max(windows, 1)))
    }

    func add(_ event: PredictionEvent, expected: String?) {
        windows += 1
        calls += event.classifierCalls
        fallbacks[event.fallback, default: 0] += 1
        guard let expected else { return }
        if event.fallback == .idle {
            idleLabelled += 1
            confusion[expected, default: [:]]["(idle)", default: 0] += 1
            return
        }
        labelled += 1
        if event.label == expected { correct += 1 }
        confusion[expected, default: [:]][event.label ?? "(none)", default: 0] += 1
    }
}

extension RecognitionMode: ExpressibleByArgument {}

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
                for row in try csvRecords(text, file: input).dropFirst() {
                    guard let path = row.fields.first, !path.isEmpty else {
                        throw ValidationError("\(input):\(row.line): no path")
                    }
                    let label = row.fields.count > 1 && !row.fields[1].isEmpty ? row.fields[1] : nil
                    // Paths are relative to the CSV's folder unless absolute.
                    result.append((path.hasPrefix("/") ? path : (folder as NSString).appendingPathComponent(path), label))
                }
            } else {
                result += try AudioFileList.expand([input]).map { ($0, nil) }
            }
        }
        return result
    }
}

/// The records of a CSV file as RFC 4180 writes them: fields separated by commas, a field in
/// double quotes may hold commas, line breaks and `""` for a quote. Blank lines are skipped;
/// `line` is where a record starts, for error messages.
func csvRecords(_ text: String, file: String) throws -> [(line: Int, fields: [String])] {
    var rows: [(line: Int, fields: [String])] = []
    var fields: [String] = []
    var field = ""
    var quoted = false, afterQuote = false, empty = true
    var line = 1, start = 1
    var chars = text.makeIterator()
    func endRecord() {
        if !empty { rows.append((start, fields + [field])) }
        (fields, field, empty, afterQuote) = ([], "", true, false)
    }
    while let c = chars.next() {
        if quoted {
            if c == "\"" {
                quoted = false
                afterQuote = true
            } else {
                if c == "\n" || c == "\r\n" { line += 1 }
                field.append(c)
            }
            continue
        }
        switch c {
        case "\"" where afterQuote:  // "" inside a quoted field
            field.append(c)
            quoted = true
            afterQuote = false
        case "\"" where field.isEmpty:
            quoted = true
            empty = false
        case ",":
            fields.append(field)
            (field, afterQuote, empty) = ("", false, false)
        case "\n", "\r\n", "\r":
            endRecord()
            line += 1
            start = line
        default:
            guard !afterQuote else { throw ValidationError("\(file):\(line): text after a closing quote") }
            field.append(c)
            empty = false
        }
    }
    guard !quoted else { throw ValidationError("\(file):\(start): a quoted field is never closed") }
    endRecord()
    return rows
}
