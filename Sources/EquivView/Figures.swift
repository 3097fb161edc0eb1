import EquivDSP
import Foundation

/// The SVG plots the pages are made of. Coordinates are in CSS pixels; every label is escaped.
public enum Figures {
    static let chosen = "#e66101", averaged = "#fdb863", plain = "#5e81ac", threshold = "#b2182b"

    /// A log-frequency spectrogram window (bins × frames, row-major, bin 0 lowest) as a PNG in an
    /// SVG with a frequency axis (C of each octave: note name and Hz) and a time axis. `lo`/`hi`
    /// fix the colour scale so that two windows drawn side by side compare.
    public static func spectrogram(
        _ values: [Float], bins: Int, frames: Int, lo: Float, hi: Float, frontEnd p: FrontEndParameters,
        startTime: Double, role: String, title: String
    ) throws(ZlibError) -> String {
        let png = try ColorMap.viridis.image(values, rows: bins, columns: frames, lo: lo, hi: hi).png()
        let (sx, sy) = (3.0, 2.0)
        let (left, top, bottom) = (96.0, 18.0, 34.0)
        let (w, h) = (Double(frames) * sx, Double(bins) * sy)
        var svg = """
            <svg class="spectrogram" data-role="\(HTML.escape(role))" data-lo="\(lo)" data-hi="\(hi)" data-bins="\(bins)" \
            data-frames="\(frames)" width="\(Int(left + w + 24))" height="\(Int(top + h + bottom))" xmlns="http://www.w3.org/2000/svg">
            <text x="\(left)" y="12">\(HTML.escape(title))</text>
            <image x="\(left)" y="\(top)" width="\(w)" height="\(h)" preserveAspectRatio="none" \
            style="image-rendering:pixelated" href="\(HTML.dataURI(png: png))"/>

            """
        let perOctave = 12 * p.binsPerSemitone
        for midi in stride(from: 0, through: 132, by: 12) {
            let f = 440 * pow(2, Double(midi - 69) / 12)
            let k = Double(perOctave) * log2(f / p.fmin)
            guard k >= 0, k <= Double(bins - 1) else { continue }
            let y = top + (Double(bins - 1) - k + 0.5) * sy
            svg += "<line x1=\"\(left - 4)\" x2=\"\(left)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#333\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">C\(midi / 12 - 1) \(Int(f.rounded())) Hz</text>\n"
        }
        let seconds = Double(frames) * p.frameInterval
        for t in stride(from: 0.0, through: seconds, by: 0.25) {
            let x = left + t / p.frameInterval * sx
            svg += "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"\(top + h)\" y2=\"\(top + h + 4)\" stroke=\"#333\"/>"
            svg += "<text x=\"\(x)\" y=\"\(top + h + 16)\" text-anchor=\"middle\">\(HTML.format(startTime + t, 2))</text>\n"
        }
        svg += "<text x=\"\(left + w / 2)\" y=\"\(top + h + 30)\" text-anchor=\"middle\">time (s)</text></svg>"
        return svg
    }

    /// The colour scale shared by the spectrograms beside it.
    public static func colorBar(lo: Float, hi: Float, unit: String) -> String {
        let stops = stride(from: 0, through: 255, by: 32).map { i in
            String(format: "<stop offset=\"%.3f\" stop-color=\"#%06x\"/>", Double(i) / 255, ColorMap.viridis.table[i])
        }.joined() + String(format: "<stop offset=\"1\" stop-color=\"#%06x\"/>", ColorMap.viridis.table[255])
        return """
            <svg class="colorbar" width="260" height="40" xmlns="http://www.w3.org/2000/svg">
            <defs><linearGradient id="cb">\(stops)</linearGradient></defs>
            <rect x="10" y="4" width="240" height="12" fill="url(#cb)"/>
            <text x="10" y="30">\(HTML.format(Double(lo), 1))</text>
            <text x="250" y="30" text-anchor="end">\(HTML.format(Double(hi), 1))</text>
            <text x="130" y="30" text-anchor="middle">\(HTML.escape(unit))</text></svg>
            """
    }

    /// The canonicalizer's probability of each shift, the chosen shift and the averaged top-K
    /// marked, and the threshold below which top-K averaging starts.
    public static func shiftDistribution(
        _ p: [Float], rangeBins: Int, binsPerSemitone: Int, chosen shift: Int, averaged: [Int], threshold: Float?
    ) -> String {
        let (bw, h, left, top) = (8.0, 110.0, 40.0, 10.0)
        let width = Double(p.count) * bw
        var svg = "<svg class=\"shifts\" width=\"\(Int(left + width + 20))\" height=\"\(Int(top + h + 36))\" xmlns=\"http://www.w3.org/2000/svg\">\n"
        for v in [0.0, 0.5, 1.0] {
            let y = top + h * (1 - v)
            svg += "<line x1=\"\(left - 3)\" x2=\"\(left + width)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#ddd\"/><text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(v)</text>\n"
        }
        for (i, q) in p.enumerated() {
            let k = i - rangeBins
            let fill = k == shift ? chosen : averaged.contains(k) && averaged.count > 1 ? Figures.averaged : plain
            let bh = max(Double(q), 0) * h
            svg += "<rect data-shift=\"\(k)\" x=\"\(left + Double(i) * bw + 1)\" y=\"\(top + h - bh)\" width=\"\(bw - 2)\" height=\"\(bh)\" fill=\"\(fill)\"><title>\(k) bins: p \(HTML.format(Double(q)))</title></rect>\n"
        }
        if let threshold {
            let y = top + h * (1 - Double(threshold))
            svg += "<line x1=\"\(left)\" x2=\"\(left + width)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"\(Figures.threshold)\" stroke-dasharray=\"4 3\"/>"
        }
        for k in stride(from: -rangeBins, through: rangeBins, by: 1) where k % (6 * binsPerSemitone) == 0 {
            let x = left + (Double(k + rangeBins) + 0.5) * bw
            svg += "<text x=\"\(x)\" y=\"\(top + h + 14)\" text-anchor=\"middle\">\(k > 0 ? "+" : "")\(k / binsPerSemitone)</text>"
        }
        svg += "<text x=\"\(left + width / 2)\" y=\"\(top + h + 30)\" text-anchor=\"middle\">shift removed (semitones)</text></svg>"
        return svg
    }

    /// The classes, most probable first, as bars, with the threshold below which the service abstains.
    public static func classes(_ ranked: [(label: String, p: Float)], decided: String?, threshold: Float?) -> String {
        let (rowH, left, w) = (20.0, 120.0, 240.0)
        let h = Double(ranked.count) * rowH
        var svg = "<svg class=\"classes\" width=\"\(Int(left + w + 60))\" height=\"\(Int(h + 8))\" xmlns=\"http://www.w3.org/2000/svg\">\n"
        for (i, c) in ranked.enumerated() {
            let y = Double(i) * rowH + 4
            let fill = c.label == decided ? chosen : plain
            svg += "<text x=\"\(left - 6)\" y=\"\(y + 13)\" text-anchor=\"end\">\(HTML.escape(c.label))</text>"
            svg += "<rect x=\"\(left)\" y=\"\(y + 2)\" width=\"\(Double(c.p) * w)\" height=\"\(rowH - 6)\" fill=\"\(fill)\"/>"
            svg += "<text x=\"\(left + Double(c.p) * w + 4)\" y=\"\(y + 13)\">\(HTML.format(Double(c.p)))</text>\n"
        }
        if let threshold {
            let x = left + Double(threshold) * w
            svg += "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"0\" y2=\"\(h + 8)\" stroke=\"\(Figures.threshold)\" stroke-dasharray=\"4 3\"/>"
        }
        return svg + "</svg>"
    }

    /// A waveform as its min/max envelope in `columns` columns.
    public static func waveform(_ samples: [Float], title: String, columns: Int = 400) -> String {
        let (h, top) = (100.0, 16.0)
        var path = ""
        let per = max(1, samples.count / columns)
        let peak = max(samples.map(abs).max() ?? 0, 1e-9)
        for c in 0..<min(columns, samples.count) {
            let slice = samples[(c * per)..<min(samples.count, (c + 1) * per)]
            let (a, b) = (Double(slice.min()! / peak), Double(slice.max()! / peak))
            path += "M\(c) \(top + h / 2 * (1 - b))V\(top + h / 2 * (1 - a))"
        }
        return """
            <svg class="waveform" width="\(columns)" height="\(Int(top + h + 4))" xmlns="http://www.w3.org/2000/svg">
            <text x="0" y="12">\(HTML.escape(title))</text><path d="\(path)" stroke="\(plain)" fill="none"/></svg>
            """
    }

    /// A timeline of one file's windows: label bands, the winning probability, the shift.
    public static func timeline(_ points: [TimelinePoint], classes: [String], duration: Double) -> String {
        let (left, w, bandH, plotH) = (60.0, 680.0, 14.0, 70.0)
        let x = { (t: Double) in left + w * t / max(duration, 1e-9) }
        let shifts = points.map(\.shiftSemitones)
        let span = max(shifts.map(abs).max() ?? 0, 1)
        var svg = "<svg class=\"timeline\" width=\"\(Int(left + w + 180))\" height=\"\(Int(max(bandH + 2 * plotH + 60, Double(classes.count) * 13 + 4)))\" xmlns=\"http://www.w3.org/2000/svg\">\n"
        svg += "<text x=\"\(left - 6)\" y=\"\(bandH - 3)\" text-anchor=\"end\">label</text>"
        for pt in points {
            let color = pt.label.map { labelColor($0, classes: classes) } ?? "#ffffff"
            let stroke = pt.label == nil ? " stroke=\"#999\"" : ""
            svg += "<rect x=\"\(x(pt.start))\" y=\"0\" width=\"\(max(x(pt.end) - x(pt.start), 1))\" height=\"\(bandH)\" fill=\"\(color)\"\(stroke)><title>\(HTML.format(pt.start, 2)) s: \(HTML.escape(pt.label ?? pt.fallback))</title></rect>"
        }
        let p0 = bandH + 10
        svg += "<text x=\"\(left - 6)\" y=\"\(p0 + 10)\" text-anchor=\"end\">p</text><rect x=\"\(left)\" y=\"\(p0)\" width=\"\(w)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#ddd\"/>"
        svg += "<polyline fill=\"none\" stroke=\"\(chosen)\" points=\"" + points.map { "\(x(($0.start + $0.end) / 2)),\(p0 + plotH * (1 - Double($0.p)))" }.joined(separator: " ") + "\"/>\n"
        let s0 = p0 + plotH + 10
        svg += "<text x=\"\(left - 6)\" y=\"\(s0 + 10)\" text-anchor=\"end\">shift</text><rect x=\"\(left)\" y=\"\(s0)\" width=\"\(w)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#ddd\"/>"
        svg += "<line x1=\"\(left)\" x2=\"\(left + w)\" y1=\"\(s0 + plotH / 2)\" y2=\"\(s0 + plotH / 2)\" stroke=\"#ddd\"/>"
        svg += "<text x=\"\(left + w + 4)\" y=\"\(s0 + 10)\">+\(HTML.format(span, 1)) st</text><text x=\"\(left + w + 4)\" y=\"\(s0 + plotH)\">−\(HTML.format(span, 1)) st</text>"
        svg += "<polyline fill=\"none\" stroke=\"\(plain)\" points=\"" + points.map { "\(x(($0.start + $0.end) / 2)),\(s0 + plotH / 2 * (1 - $0.shiftSemitones / span))" }.joined(separator: " ") + "\"/>\n"
        svg += "<text x=\"\(left)\" y=\"\(s0 + plotH + 16)\">0 s</text><text x=\"\(left + w)\" y=\"\(s0 + plotH + 16)\" text-anchor=\"end\">\(HTML.format(duration, 1)) s</text>"
        for (i, c) in classes.enumerated() {
            svg += "<rect x=\"\(left + w + 60)\" y=\"\(Double(i) * 13)\" width=\"10\" height=\"10\" fill=\"\(labelColor(c, classes: classes))\"/>"
            svg += "<text x=\"\(left + w + 74)\" y=\"\(Double(i) * 13 + 9)\">\(HTML.escape(c))</text>"
        }
        return svg + "</svg>"
    }

    /// A qualitative colour per class (ColorBrewer's Set2, repeated past 8).
    static func labelColor(_ label: String, classes: [String]) -> String {
        let set2 = ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"]
        return set2[(classes.firstIndex(of: label) ?? classes.count) % set2.count]
    }
}

/// One decided window on a timeline.
public struct TimelinePoint: Sendable {
    public let start: Double, end: Double
    public let label: String?
    public let p: Float
    public let shiftSemitones: Double
    public let fallback: String

    public init(start: Double, end: Double, label: String?, p: Float, shiftSemitones: Double, fallback: String) {
        (self.start, self.end, self.label, self.p, self.shiftSemitones, self.fallback) = (start, end, label, p, shiftSemitones, fallback)
    }
}
