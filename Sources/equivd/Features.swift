import ArgumentParser
import EquivAudio
import EquivCore
import EquivDSP
import Foundation

/// `equivd features`: the daemon's own front end over audio files, so that training in Python sees
/// exactly the features the service computes.
struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute log-frequency spectrogram windows of audio files.",
        discussion: """
            Without --out, prints a summary line per file. With --out, writes the windows of one \
            file as a float32 .npy array of shape (windows, bins, frames); with --out-dir, one such \
            file per input, named after it.
            """
    )

    @Argument(help: "Audio files (WAV, FLAC, OGG) or folders of them.")
    var inputs: [String] = []

    @Option(name: .long, help: "Write the windows of the (single) input to this .npy file.")
    var out: String?

    @Option(name: .long, help: "Write the windows of each input to DIR/<name>.npy.")
    var outDir: String?

    @Flag(name: .long, help: "Print the front end's parameters as JSON (the bundle.json keys) and exit.")
    var parameters = false

    @Option(name: .long, help: ArgumentHelp(
        "Write what this bundle's classifier is given for each window instead (its models.classifier.input).",
        valueName: "dir"))
    var bundle: String?

    @Option(name: .long, help: "With --bundle: the shift undone, in bins (log_mel and waveform inputs resample the audio).")
    var shiftBins = 0

    func validate() throws {
        if inputs.isEmpty && !parameters { throw ValidationError("give at least one audio file or folder") }
        if out != nil && inputs.count != 1 {
            throw ValidationError("--out takes exactly one input file, got \(inputs.count)")
        }
        if out != nil && outDir != nil { throw ValidationError("give --out or --out-dir, not both") }
        if bundle != nil && out == nil && outDir == nil { throw ValidationError("--bundle writes files: give --out or --out-dir") }
    }

    func run() throws {
        if parameters {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(FrontEndParameters()), as: UTF8.self))
            return
        }
        let files = try AudioFileList.expand(inputs)
        let frontEnd = try FrontEnd()
        let recognizer = try bundle.map { directory in
            let loaded = try ModelBundle(directory: directory, frontEnd: frontEnd.parameters)
            let recognizer = try Recognizer(bundle: loaded)
            let range = loaded.manifest.shift.rangeBins
            guard (-range...range).contains(shiftBins) else { throw ValidationError("--shift-bins must be in -\(range)...\(range)") }
            return recognizer
        }
        if let out {
            try export(files[0], to: out, frontEnd: frontEnd, recognizer: recognizer)
            return
        }
        if let outDir {
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            try forEachFile(files) { file in
                let name = ((file as NSString).lastPathComponent as NSString).deletingPathExtension + ".npy"
                try export(file, to: (outDir as NSString).appendingPathComponent(name), frontEnd: frontEnd, recognizer: recognizer)
            }
            return
        }
        let p = frontEnd.parameters
        print("front end: \(p.sampleRate) Hz, FFT \(p.fftSize), hop \(p.hopLength), \(p.binCount) bins "
            + "(\(p.binsPerSemitone)/semitone from \(p.fmin) Hz), windows of \(p.windowFrames) frames every \(p.windowStepFrames)")
        print(FileSummary.header)
        var total = FileSummary.Totals()
        defer { print(total.line) }
        try forEachFile(files) { file in
            let summary = try FileSummary.measure(file, frontEnd: frontEnd)
            print(summary.line)
            total.add(summary)
        }
    }

    /// Runs `body` on every file; one that fails is reported and skipped, and the exit status
    /// says so at the end.
    private func forEachFile(_ files: [String], _ body: (String) throws -> Void) throws {
        var failures = 0
        var stderr = StandardError()
        for file in files {
            do {
                try body(file)
            } catch {
                print("error: \(error)", to: &stderr)
                failures += 1
            }
        }
        if failures > 0 { throw ExitCode.failure }
    }

    /// Writes the windows of `path`, or with a recognizer what its classifier is given for each.
    private func export(_ path: String, to out: String, frontEnd: FrontEnd, recognizer: Recognizer?) throws {
        let p = frontEnd.parameters
        let source = try AudioFileSource(path: path, sampleRate: p.sampleRate, minimumSamples: p.windowSpanSamples)
        var stderr = StandardError()
        guard let recognizer else {
            let writer = try NPYWriter(path: out, rows: p.binCount, columns: p.windowFrames)
            try stream(source, through: frontEnd) { window in try writer.append(window.values) }
            try writer.finish()
            print("\(out): \(writer.count) windows × \(writer.rows) bins × \(writer.columns) frames", to: &stderr)
            return
        }
        let shape = recognizer.classifierInputShape
        let writer = try NPYWriter(path: out, rows: shape.dropLast().reduce(1, *), columns: shape.last ?? 1)
        var audio: [Float] = []  // the whole file: this is offline
        let need = recognizer.audioSamplesNeeded
        try stream(source, through: frontEnd, onBlock: { audio += $0 }) { window in
            let end = window.firstFrame * p.hopLength + p.windowSpanSamples
            let before = ((end - need)..<end).map { $0 >= 0 && $0 < audio.count ? audio[$0] : 0 }
            let input = before.withUnsafeBufferPointer { recognizer.classifierInput(for: window.values, audio: $0, shift: shiftBins) }
            try input.withUnsafeBufferPointer { try writer.append($0) }
        }
        try writer.finish()
        print("\(out): \(writer.count) windows × \(shape) classifier input", to: &stderr)
    }
}

/// Feeds a whole source through a front end, one block at a time.
func stream(
    _ source: AudioSource, through frontEnd: FrontEnd, onBlock: (UnsafeBufferPointer<Float>) -> Void = { _ in },
    onWindow: (SpectrogramWindow) throws -> Void
) throws {
    frontEnd.reset()
    let block = UnsafeMutableBufferPointer<Float>.allocate(capacity: 8192)
    defer { block.deallocate() }
    while true {
        let n = try source.read(into: block)
        if n == 0 { break }
        onBlock(UnsafeBufferPointer(rebasing: block[..<n]))
        try frontEnd.process(UnsafeBufferPointer(rebasing: block[..<n]), onWindow: onWindow)
    }
}

/// One row of the `features` summary.
struct FileSummary {
    static let header = "file".padding(toLength: 32, withPad: " ", startingAt: 0)
        + "    duration   rate  ch  windows  peak Hz  level  non-finite  x realtime"
    let name: String
    let duration: Double
    let fileRate: Int
    let channels: Int
    let windows: Int
    let peakHz: Double
    let meanLevel: Double
    let nonFinite: Int
    let seconds: Double

    static func measure(_ path: String, frontEnd: FrontEnd) throws -> FileSummary {
        let started = ContinuousClock.now
        let source = try AudioFileSource(path: path, sampleRate: frontEnd.parameters.sampleRate, minimumSamples: frontEnd.parameters.windowSpanSamples)
        let bins = frontEnd.parameters.binCount
        var bandSums = [Double](repeating: 0, count: bins)
        var values = 0
        try stream(source, through: frontEnd) { window in
            for k in 0..<bins {
                var sum: Float = 0
                for t in 0..<window.frameCount { sum += window[k, t] }
                bandSums[k] += Double(sum)
            }
            values += window.values.count
        }
        let elapsed = started.duration(to: .now)
        let peak = bandSums.indices.max { bandSums[$0] < bandSums[$1] } ?? 0
        return FileSummary(
            name: (path as NSString).lastPathComponent, duration: source.duration, fileRate: source.fileSampleRate,
            channels: source.channels, windows: frontEnd.windowsProduced,
            peakHz: frontEnd.parameters.centerFrequency(ofBin: Double(peak)),
            meanLevel: values > 0 ? bandSums.reduce(0, +) / Double(values) : .nan,
            nonFinite: source.nonFiniteSamples,
            seconds: elapsed / .seconds(1))
    }

    var line: String {
        let column = name.count > 32 ? String(name.prefix(31)) + "…" : name.padding(toLength: 32, withPad: " ", startingAt: 0)
        return column + String(
            format: "  %8.2fs %6d %3d %8d %8.1f %6.2f %11d %10.0f",
            duration, fileRate, channels, windows, peakHz, meanLevel, nonFinite, duration / max(seconds, 1e-9))
    }

    /// Column totals for the last line.
    struct Totals {
        var files = 0, duration = 0.0, windows = 0, seconds = 0.0
        mutating func add(_ s: FileSummary) {
            files += 1
            duration += s.duration
            windows += s.windows
            seconds += s.seconds
        }
        var line: String {
            String(
                format: "total: %d files, %.1f s of audio, %d windows in %.3f s (%.0f x realtime)",
                files, duration, windows, seconds, duration / max(seconds, 1e-9))
        }
    }
}

/// Expands folders into the audio files they hold, sorted; files pass through as given.
enum AudioFileList {
    static let extensions: Set<String> = ["wav", "flac", "ogg", "oga", "aif", "aiff"]

    static func expand(_ inputs: [String]) throws -> [String] {
        var files: [String] = []
        for input in inputs {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: input).sorted()
                let audio = names.filter { extensions.contains(($0 as NSString).pathExtension.lowercased()) }
                if audio.isEmpty { throw ValidationError("\(input): folder holds no audio files (\(extensions.sorted().joined(separator: ", ")))") }
                files += audio.map { (input as NSString).appendingPathComponent($0) }
            } else {
                files.append(input)
            }
        }
        return files
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}
