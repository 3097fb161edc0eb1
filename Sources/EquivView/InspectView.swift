import EquivCore
import EquivDSP

/// One window's view (`equivd inspect`, replay reports, clip pages): the spectrogram as received
/// and as canonicalized on one colour scale, the canonicalizer's distribution over shifts, the
/// classifier's classes, the fallback and why, and a pretrained model's own input before and after.
public struct InspectView {
    public let inspection: Inspection
    public let source: String
    public let seq: Int
    public let startTime: Double, endTime: Double
    public let frontEnd: FrontEndParameters

    public init(inspection: Inspection, source: String, seq: Int, startTime: Double, endTime: Double, frontEnd: FrontEndParameters) {
        (self.inspection, self.source, self.seq, self.startTime, self.endTime, self.frontEnd) = (inspection, source, seq, startTime, endTime, frontEnd)
    }

    /// The view as one <section>, `expected` (a replay's label) marking a wrong decision.
    public func html(expected: String? = nil) throws(ZlibError) -> String {
        let i = inspection, d = i.decision
        let both = (i.received + i.canonicalized).filter(\.isFinite)
        let (lo, hi) = (both.min() ?? 0, both.max() ?? 1)
        let received = try Figures.spectrogram(
            i.received, bins: i.bins, frames: i.frames, lo: lo, hi: hi, frontEnd: frontEnd, startTime: startTime,
            role: "received", title: "as received")
        let canonical = try Figures.spectrogram(
            i.canonicalized, bins: i.bins, frames: i.frames, lo: lo, hi: hi, frontEnd: frontEnd, startTime: startTime,
            role: "canonicalized",
            title: d.fixedShiftBins.map { String(format: "canonicalized (shift %+d bins undone; the fixed part's %+d)", d.shiftBins, $0) }
                ?? String(format: "canonicalized (shift %+d bins undone)", d.shiftBins))
        let wrong = expected != nil && d.fallback != .idle && d.label != expected
        let verdictClass = d.fallback == .abstain ? "abstain" : wrong ? "wrong" : "ok"
        var out = """
            <section class="window" id="w\(seq)" data-seq="\(seq)" data-label="\(HTML.escape(d.label ?? ""))" data-fallback="\(d.fallback.rawValue)" data-shift-bins="\(d.shiftBins)">
            <h2>\(HTML.escape(source)): window \(seq), \(HTML.format(startTime, 2))–\(HTML.format(endTime, 2)) s</h2>
            <p class="verdict \(verdictClass)">\(HTML.escape(d.label ?? (d.fallback == .idle ? "idle" : "uncertain")))\
            \(d.fallback == .idle ? "" : ", p \(HTML.format(Double(d.probability)))")\
            \(expected.map { " · expected \(HTML.escape($0))" } ?? "") · shift \(String(format: "%+.1f", d.shiftSemitones)) semitones \
            (\(String(format: "%+d", d.shiftBins)) bins) · fallback \(d.fallback.rawValue) · \(d.classifierCalls) classifier call\(d.classifierCalls == 1 ? "" : "s") · mode \(i.mode.rawValue)</p>
            <p class="reason">\(HTML.escape(i.reason))</p>
            <div class="row"><figure>\(received)</figure><figure>\(canonical)</figure></div>
            \(Figures.colorBar(lo: lo, hi: hi, unit: "ln magnitude"))

            """
        if !i.shiftProbabilities.isEmpty {
            out += "<h3>Canonicalizer: probability of each shift</h3><figure>"
            out += Figures.shiftDistribution(
                i.shiftProbabilities, rangeBins: i.rangeBins, binsPerSemitone: frontEnd.binsPerSemitone, chosen: d.shiftBins,
                averaged: d.classifiedShifts, threshold: i.mode == .topk ? i.thresholds.canonicalizerMinP : nil)
            out += "<figcaption>chosen shift dark orange\(d.classifiedShifts.count > 1 ? ", the other top-\(d.classifiedShifts.count) shifts averaged light orange" : ""); "
            out += "dashed: canonicalizer_min_p (below it, top-K averaging)</figcaption></figure>\n"
        }
        if !d.top.isEmpty {
            out += "<h3>Classifier</h3><figure>"
            out += Figures.classes(d.top.map { ($0.label, $0.probability) }, decided: d.label, threshold: i.mode == .topk ? i.thresholds.classifierMinP : nil)
            out += "<figcaption>dashed: classifier_min_p (below it, the service abstains)</figcaption></figure>\n"
        }
        if let m = i.modelInput { out += try modelInput(m, shift: d.shiftBins) }
        return out + "</section>\n"
    }

    private func modelInput(_ m: Inspection.ModelInput, shift: Int) throws(ZlibError) -> String {
        var out = "<h3>The classifier's own input</h3><div class=\"row\">"
        switch m.input {
        case .logMel(let p, _):
            func grid(_ v: [Float]) -> [Float] {  // mel band rows (lowest first) × frames
                p.layout == .melsFrames ? v : (0..<(p.nMels * p.frames)).map { v[($0 % p.frames) * p.nMels + $0 / p.frames] }
            }
            let (a, b) = (grid(m.received), grid(m.canonicalized))
            let both = (a + b).filter(\.isFinite)
            let (lo, hi) = (both.min() ?? 0, both.max() ?? 1)
            for (values, role, title) in [(a, "model-received", "log-mel as received"), (b, "model-canonicalized", String(format: "log-mel of the audio resampled to undo %+d bins", shift))] {
                let png = try ColorMap.viridis.image(values, rows: p.nMels, columns: p.frames, lo: lo, hi: hi).png()
                out += """
                    <figure><svg class="model-input" data-role="\(role)" data-lo="\(lo)" data-hi="\(hi)" width="\(p.frames * 3 + 10)" \
                    height="\(p.nMels * 2 + 36)" xmlns="http://www.w3.org/2000/svg"><text x="0" y="12">\(HTML.escape(title))</text>\
                    <image x="0" y="18" width="\(p.frames * 3)" height="\(p.nMels * 2)" preserveAspectRatio="none" style="image-rendering:pixelated" \
                    href="\(HTML.dataURI(png: png))"/><text x="0" y="\(p.nMels * 2 + 32)">\(p.nMels) mel bands × \(p.frames) frames at \(p.sampleRate) Hz</text></svg></figure>
                    """
            }
        case .waveform(let rate, let samples, _):
            out += "<figure>\(Figures.waveform(m.received, title: "waveform as received (\(samples) samples at \(rate) Hz)"))</figure>"
            out += "<figure>\(Figures.waveform(m.canonicalized, title: String(format: "resampled to undo %+d bins", shift)))</figure>"
        case .equivdSpectrogram:
            return ""
        }
        return out + "</div>\n"
    }
}
