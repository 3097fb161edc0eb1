import EquivAudio
import EquivDSP
import EquivProtocol
import Foundation
import Testing

@testable import EquivCore

/// The recognition path on the default bundle: silence is idle and costs no inference; each mode
/// makes the classifier calls it should; a window's shift is reported in semitones.
@Suite struct RecognizerTests {
    static func bundle() throws -> ModelBundle {
        try ModelBundle(directory: ModelBundleTests.models, frontEnd: FrontEndParameters())
    }

    /// A synthetic window: a harmonic comb whose lowest line sits at `bin`, over a floor.
    static func window(combAt bin: Int) -> [Float] {
        let p = FrontEndParameters()
        var w = [Float](repeating: -9, count: p.binCount * p.windowFrames)
        for h in 1...6 {
            let b = bin + Int((24 * log2(Double(h))).rounded())
            guard b < p.binCount else { break }
            for t in 0..<p.windowFrames { w[b * p.windowFrames + t] = -2 }
        }
        return w
    }

    @Test("silence is idle: no label, no classifier call")
    func silence() throws {
        let recognizer = try Recognizer(bundle: try Self.bundle())
        let quiet = [Float](repeating: log(1e-6), count: 168 * 100)
        let d = quiet.withUnsafeBufferPointer { recognizer.decide($0) }
        #expect(d.fallback == .idle && d.label == nil && d.classifierCalls == 0)
    }

    @Test("classifier calls per mode: vanilla 1, canon 1, group averaging 2K+1")
    func callsPerMode() throws {
        let bundle = try Self.bundle()
        let w = Self.window(combAt: 60)
        for (mode, calls) in [(RecognitionMode.vanilla, 1), (.canon, 1), (.groupavg, 49)] {
            let d = w.withUnsafeBufferPointer { (try? Recognizer(bundle: bundle, mode: mode))!.decide($0) }
            #expect(d.classifierCalls == calls, "\(mode)")
            #expect(d.label != nil)
            #expect(abs(d.top.reduce(0) { $0 + $1.probability } - 1) < 1e-4)
        }
    }

    /// The middle window of a bundled nominal-speed sample, through the real front end.
    static func sampleWindow(_ name: String) throws -> [Float] {
        let path = URL(fileURLWithPath: ModelBundleTests.models).deletingLastPathComponent().appendingPathComponent("Samples/\(name)").path
        let source = try AudioFileSource(path: path)
        let frontEnd = try FrontEnd()
        var windows: [[Float]] = []
        var block = [Float](repeating: 0, count: 4096)
        while true {
            let n = try block.withUnsafeMutableBufferPointer { try source.read(into: $0) }
            if n == 0 { break }
            block.withUnsafeBufferPointer { frontEnd.process(UnsafeBufferPointer(rebasing: $0[..<n])) { windows.append(Array($0.values)) } }
        }
        return windows[windows.count / 2]
    }

    /// T_j: the window moved up by j bins, vacated bins repeating the edge bin.
    static func translated(_ w: [Float], by j: Int) -> [Float] {
        (0..<168).flatMap { f in w[(min(max(f - j, 0), 167) * 100)..<(min(max(f - j, 0), 167) * 100 + 100)] }
    }

    @Test("moving a window up by j bins moves the canonicalizer's shift by j (equivariance, in Swift)",
          arguments: ["gear-nominal.wav", "bearing-nominal.wav"])
    func shiftFollowsTranslation(sample: String) throws {
        let recognizer = try Recognizer(bundle: try Self.bundle(), mode: .canon)
        let w = try Self.sampleWindow(sample)
        let base = w.withUnsafeBufferPointer { recognizer.decide($0) }
        #expect(abs(base.shiftBins) <= 2, "a nominal-speed sample needs (almost) no shift, got \(base.shiftBins)")
        for j in [-6, -3, 3, 6] {
            let moved = Self.translated(w, by: j).withUnsafeBufferPointer { recognizer.decide($0) }
            #expect(moved.shiftBins - base.shiftBins == j, "moved by \(j)")
            #expect(moved.shiftSemitones == Double(moved.shiftBins) / 2)
        }
    }

    @Test("group averaging is the mean of the classifier over all 2K+1 translations")
    func groupAveragingIsTheMean() throws {
        let bundle = try Self.bundle()
        let w = try Self.sampleWindow("gear-nominal.wav")
        let vanilla = try Recognizer(bundle: bundle, mode: .vanilla)
        var mean: [String: Float] = [:]
        for k in -24...24 {
            let d = Self.translated(w, by: -k).withUnsafeBufferPointer { vanilla.decide($0) }
            for c in d.top { mean[c.label, default: 0] += c.probability / 49 }
        }
        let averaged = w.withUnsafeBufferPointer { (try? Recognizer(bundle: bundle, mode: .groupavg))!.decide($0) }
        #expect(averaged.top.count == mean.count)
        for c in averaged.top { #expect(abs(c.probability - mean[c.label, default: -1]) < 1e-5, "\(c.label)") }
    }

    @Test("a top-1 fallback classifies the window the canonicalizer's shift moves back")
    func topOneFallbackIsTheCanonicalPose() throws {
        let bundle = try Self.bundle()
        let w = Self.translated(try Self.sampleWindow("gear-nominal.wav"), by: 8)
        let canon = w.withUnsafeBufferPointer { (try? Recognizer(bundle: bundle, mode: .canon))!.decide($0) }
        #expect(abs(canon.shiftBins - 8) <= 2)
        let always = Recognizer.Thresholds(canonicalizerMinP: 1.1, topK: 1, classifierMinP: 0)
        let fallback = w.withUnsafeBufferPointer { (try? Recognizer(bundle: bundle, mode: .topk, thresholds: always))!.decide($0) }
        #expect(fallback.fallback == .topk && fallback.classifierCalls == 1)
        for (f, c) in zip(fallback.top, canon.top) {
            #expect(f.label == c.label && abs(f.probability - c.probability) < 1e-6)
        }
    }

    @Test("a low top-K threshold never falls back; an impossible one always does, with K calls")
    func fallbackThreshold() throws {
        let bundle = try Self.bundle()
        let w = Self.window(combAt: 55)
        var t = Recognizer.Thresholds(canonicalizerMinP: 0, topK: 3, classifierMinP: 0)
        let confident = w.withUnsafeBufferPointer { (try? Recognizer(bundle: bundle, mode: .topk, thresholds: t))!.decide($0) }
        #expect(confident.fallback == .none && confident.classifierCalls == 1)
        t.canonicalizerMinP = 1.1
        let unsure = w.withUnsafeBufferPointer { (try? Recognizer(bundle: bundle, mode: .topk, thresholds: t))!.decide($0) }
        #expect(unsure.fallback == .topk && unsure.classifierCalls == 3)
        t.classifierMinP = 1.1
        let abstained = w.withUnsafeBufferPointer { (try? Recognizer(bundle: bundle, mode: .topk, thresholds: t))!.decide($0) }
        #expect(abstained.fallback == .abstain && abstained.label == nil)
    }

    /// The default bundle with its classifier's outputs mapped to its classes by `map`.
    static func mapped(_ map: [String: [Int]], activation: String) throws -> Recognizer {
        let folder = try ModelBundleTests().classifierEntry(output: ["activation": activation, "classes": map])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        return try Recognizer(bundle: try ModelBundle(directory: folder, frontEnd: FrontEndParameters()), mode: .vanilla)
    }

    @Test("an output map gathers outputs into labels: softmax sums them, sigmoid takes the highest, both renormalized")
    func outputMap() throws {
        let w = try Self.sampleWindow("gear-nominal.wav")
        let plain = try Recognizer(bundle: try Self.bundle(), mode: .vanilla)
        let classes = plain.manifest.classes
        let p = Dictionary(uniqueKeysWithValues: w.withUnsafeBufferPointer { plain.decide($0) }.top.map { ($0.label, $0.probability) })
        // Every class reads the output of the next one.
        let rotated = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, [($0 + 1) % classes.count]) })
        let moved = w.withUnsafeBufferPointer { try! Self.mapped(rotated, activation: "softmax").decide($0) }
        for (c, label) in classes.enumerated() {
            let got = try #require(moved.top.first { $0.label == label }).probability
            #expect(abs(got - p[classes[(c + 1) % classes.count]]!) < 1e-6)
        }
        // The first class gathers the first two outputs; the second class keeps its own.
        var merged = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, [$0]) })
        merged[classes[0]] = [0, 1]
        let sum = w.withUnsafeBufferPointer { try! Self.mapped(merged, activation: "softmax").decide($0) }
        let total = p.values.reduce(0, +) + p[classes[1]]!
        #expect(abs(try #require(sum.top.first { $0.label == classes[0] }).probability - (p[classes[0]]! + p[classes[1]]!) / total) < 1e-5)
        // Sigmoid: σ of each label's highest logit, over their sum. Logit differences are softmax
        // log-ratios, so the order of the labels is the softmax order.
        let tags = w.withUnsafeBufferPointer { try! Self.mapped(Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, [$0]) }), activation: "sigmoid").decide($0) }
        #expect(tags.label == classes.max { p[$0]! < p[$1]! })
        #expect(abs(tags.top.map(\.probability).reduce(0, +) - 1) < 1e-5)
    }
}
