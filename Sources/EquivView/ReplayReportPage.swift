import EquivProtocol

/// `equivd replay --html`: one page per run — accuracy, confusion and fallback rates; per file a
/// timeline of label, confidence and estimated shift (a line-speed trace); the wrong and
/// abstained windows listed, the first `maxViews` of them with their inspect view inline.
public struct ReplayReportPage {
    public struct File {
        public let path: String
        public let expected: String?
        public var duration: Double = 0
        public var points: [TimelinePoint] = []
        /// Wrong or abstained windows: (seq, start time, what was decided, view if kept).
        public var flagged: [(seq: Int, start: Double, decided: String, view: String?)] = []

        public init(path: String, expected: String?) { (self.path, self.expected) = (path, expected) }
    }

    public let classes: [String]
    public let summaryText: String
    public let accuracy: Double?
    public let confusion: [String: [String: Int]]
    public let fallbackRates: [String: Double]
    public let files: [File]
    public let viewsLeftOut: Int

    public init(
        classes: [String], summaryText: String, accuracy: Double?, confusion: [String: [String: Int]],
        fallbackRates: [String: Double], files: [File], viewsLeftOut: Int
    ) {
        (self.classes, self.summaryText, self.accuracy, self.confusion) = (classes, summaryText, accuracy, confusion)
        (self.fallbackRates, self.files, self.viewsLeftOut) = (fallbackRates, files, viewsLeftOut)
    }

    public func html(title: String) -> String {
        var body = "<h1>\(HTML.escape(title))</h1>\n"
        if let accuracy { body += "<p class=\"big\">\(HTML.format(accuracy, 1)) %</p><p class=\"muted\">of the labelled windows that were not idle decided right (an abstained window counts as wrong)</p>\n" }
        body += "<pre class=\"muted\">\(HTML.escape(summaryText))</pre>\n"
        body += "<h3>Fallbacks</h3><table><tr>" + Fallback.allCases.map { "<th>\($0.rawValue)</th>" }.joined() + "</tr><tr>"
        body += Fallback.allCases.map { "<td>\(HTML.format(100 * (fallbackRates[$0.rawValue] ?? 0), 1)) %</td>" }.joined() + "</tr></table>\n"
        if !confusion.isEmpty {
            let columns = classes + ["(none)", "(idle)"] + Set(confusion.values.flatMap(\.keys)).subtracting(classes + ["(none)", "(idle)"]).sorted()
            body += "<h3>Confusion (expected → decided, windows)</h3><table class=\"confusion\"><tr><th class=\"l\">expected</th>"
            body += columns.map { "<th>\(HTML.escape($0 == "(none)" ? "abstained" : $0 == "(idle)" ? "idle" : $0))</th>" }.joined() + "</tr>\n"
            for expected in confusion.keys.sorted() {
                body += "<tr><th class=\"l\">\(HTML.escape(expected))</th>"
                body += columns.map { c in
                    let n = confusion[expected]?[c] ?? 0
                    return "<td\(c == expected && n > 0 ? " class=\"ok\"" : n > 0 ? " class=\"wrong\"" : "")>\(n)</td>"
                }.joined() + "</tr>\n"
            }
            body += "</table>\n"
        }
        for (f, file) in files.enumerated() {
            body += "<h2 id=\"f\(f)\">\(HTML.escape(file.path))\(file.expected.map { " · expected \(HTML.escape($0))" } ?? "")</h2>\n"
            body += "<figure>\(Figures.timeline(file.points, classes: classes, duration: file.duration))</figure>\n"
            guard !file.flagged.isEmpty else { continue }
            body += "<h3>Wrong or abstained windows</h3><table><tr><th>window</th><th>start (s)</th><th class=\"l\">decided</th></tr>\n"
            for w in file.flagged {
                let cell = w.view != nil ? "<a href=\"#f\(f)w\(w.seq)\">\(w.seq)</a>" : "\(w.seq)"
                body += "<tr><td>\(cell)</td><td>\(HTML.format(w.start, 2))</td><td class=\"l\">\(HTML.escape(w.decided))</td></tr>\n"
            }
            body += "</table>\n"
            for w in file.flagged { if let view = w.view { body += "<div id=\"f\(f)w\(w.seq)\">\(view)</div>" } }
        }
        if viewsLeftOut > 0 { body += "<p class=\"muted\">\(viewsLeftOut) wrong or abstained windows are listed without their view (--html-views).</p>" }
        return HTML.document(title: title, body: body)
    }
}
