import ArgumentParser
import EquivAudio
import EquivCore
import EquivDSP
import EquivProtocol
import EquivService
import EquivView
import Foundation

/// `equivd inspect`: what the canonicalizer saw and did for a window of a file, as one
/// self-contained HTML page, through the service's pipeline.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw what the canonicalizer and classifier did with windows of an audio file (self-contained HTML).",
        discussion: """
            Without --at or --all, the first window. A window is about 50 KB of page (two PNGs and \
            the plots; more with a pretrained model's own input); --all stops after --max-windows \
            windows (60: about 3 MB) and says so on the page.
            """
    )

    @Argument(help: "An audio file (WAV, FLAC, OGG).")
    var file: String

    @Option(name: .long, help: ArgumentHelp("The window whose span holds this time (the one centred nearest).", valueName: "seconds"))
    var at: Double?

    @Flag(name: .long, help: "Every window of the file.")
    var all = false

    @Option(name: .long, help: "With --all: at most this many windows on the page.")
    var maxWindows = 60

    @Option(name: .long, help: "Model bundle folder.")
    var bundle = "Models"

    @Option(name: .long, help: "vanilla, canon, topk (the service), groupavg or partial (a bundle with a separator).")
    var mode: RecognitionMode = .topk

    @Option(name: .long, help: ArgumentHelp("Write the page here.", valueName: "out.html"))
    var html: String

    func validate() throws {
        if at != nil && all { throw ValidationError("give --at or --all, not both") }
        if let at, !(at >= 0) { throw ValidationError("--at must be a time in seconds ≥ 0, got \(at)") }
        if maxWindows < 1 { throw ValidationError("--max-windows must be ≥ 1") }
    }

    func run() throws {
        let frontEnd = try FrontEnd()
        let p = frontEnd.parameters
        var model = ServiceConfiguration.Model()
        model.bundle = bundle
        model.mode = mode
        let recognition = try Recognition(configuration: model, frontEnd: p)
        let source = try AudioFileSource(path: file, sampleRate: p.sampleRate, minimumSamples: p.windowSpanSamples)
        let name = (file as NSString).lastPathComponent
        let windows = WindowViews()
        let (at, all, maxWindows) = (at, all, maxWindows)
        let pipeline = Pipeline(source: source, sourceName: file, frontEnd: frontEnd, recognition: recognition, windowQueue: 8, dropWhenFull: false)
        pipeline.start(onDecision: { window, _ in
            windows.span = (windows.span?.first ?? window.streamStart, window.streamEnd)
            let centre = (window.streamStart + window.streamEnd) / 2
            if let at {
                guard window.streamStart <= at && at <= window.streamEnd,
                      windows.nearest.map({ abs($0.centre - at) > abs(centre - at) }) ?? true else { return }
            } else if all {
                guard windows.views.count < maxWindows else { windows.omitted += 1; return }
            } else if !windows.views.isEmpty || windows.nearest != nil {
                return
            }
            let inspection = window.values.withUnsafeBufferPointer { values in
                window.audio.withUnsafeBufferPointer { recognition.recognizer.inspect(values, audio: $0) }
            }
            let view = InspectView(inspection: inspection, source: name, seq: window.seq, startTime: window.streamStart, endTime: window.streamEnd, frontEnd: p)
            if all { windows.views.append(view) } else { windows.nearest = (centre, view) }
        })
        pipeline.wait()
        if let error = pipeline.error { throw ValidationError("\(file): \(error)") }
        let views = all ? windows.views : windows.nearest.map { [$0.view] } ?? []
        guard !views.isEmpty else {
            let span = windows.span.map { String(format: "its windows span %.2f–%.2f s", $0.first, $0.last) } ?? "it has no windows"
            throw ValidationError("\(file): no window holds \(at ?? 0) s; \(span)")
        }
        var body = """
            <h1>equivd inspect: \(HTML.escape(name))</h1>
            <p class="muted">bundle \(HTML.escape(bundle)) (\(recognition.modelIDs.sorted { $0.key < $1.key }.map { "\(HTML.escape($0.key)) \($0.value)" }.joined(separator: ", "))) · \
            mode \(mode.rawValue) · \(views.count) window\(views.count == 1 ? "" : "s")</p>

            """
        for view in views { body += try view.html() }
        if windows.omitted > 0 {
            body += "<p class=\"muted\">\(windows.omitted) more windows left out (--max-windows \(maxWindows)).</p>\n"
        }
        do {
            try HTML.document(title: "equivd inspect: \(name)", body: body).write(toFile: html, atomically: true, encoding: .utf8)
        } catch {
            throw ValidationError("\(html): cannot write the page: \(error.localizedDescription)")
        }
        var stderr = StandardError()
        print("\(html): \(views.count) window\(views.count == 1 ? "" : "s")", to: &stderr)
    }
}

/// What the inference queue collects for `inspect`; read after the pipeline finished.
private final class WindowViews: @unchecked Sendable {
    var views: [InspectView] = []
    var nearest: (centre: Double, view: InspectView)?
    var omitted = 0
    var span: (first: Double, last: Double)?
}
