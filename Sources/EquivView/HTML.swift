import Foundation

/// Self-contained pages: one inline style sheet, images as data: URIs, plots as inline SVG,
/// nothing fetched. Every text that comes from outside (file names, labels, messages) goes
/// through `escape`.
public enum HTML {
    /// `text` safe in element content and in quoted attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A PNG as a data: URI.
    public static func dataURI(png: [UInt8]) -> String { "data:image/png;base64," + Data(png).base64EncodedString() }

    /// A whole page. `head` goes into <head> as given (a script of the page's own, for instance).
    public static func document(title: String, body: String, head: String = "") -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <link rel="icon" href="data:,">
        <title>\(escape(title))</title>
        <style>\(style)</style>
        \(head)
        </head>
        <body>
        \(body)
        </body>
        </html>

        """
    }

    static func format(_ value: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", value) }

    private static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
        h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-top:1px solid #ccc;padding-top:.6em}
        h3{font-size:1em;margin:.8em 0 .2em}
        .row{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
        figure{margin:.4em 0}figcaption{font-size:.9em;color:#555}
        svg text{font:11px system-ui,sans-serif;fill:#333}
        table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
        th{background:#f3f3f3}td.l,th.l{text-align:left}
        .verdict{font-size:1.1em}.reason{color:#555}.abstain,.wrong{color:#b2182b}.ok{color:#1a7f37}
        pre{white-space:pre-wrap}.big{font-size:2.4em;font-weight:600}.muted{color:#777}
        """
}
