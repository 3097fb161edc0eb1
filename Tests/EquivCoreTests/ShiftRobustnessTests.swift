import EquivAudio
import EquivDSP
import Foundation
import Testing

@testable import EquivCore

/// Issue 5's behaviour checks on real audio through the front end and the service's recognizer
/// (mode topk, the bundle's thresholds): pitch-shifted samples keep their label, ambiguous
/// mixtures take the fallback paths.
@Suite struct ShiftRobustnessTests {
    static func samples(_ name: String) throws -> [Float] {
        let path = URL(fileURLWithPath: ModelBundleTests.models).deletingLastPathComponent().appendingPathComponent("Samples/\(name)").path
        let source = try AudioFileSource(path: path)
        var all: [Float] = []
        var block = [Float](repeating: 0, count: 4096)
        while true {
            let n = try block.withUnsafeMutableBufferPointer { try source.read(into: $0) }
            if n == 0 { return all }
            all += block[..<n]
        }
    }

    /// `x` played 2^(s/12) times faster, as a resampled recording is: every frequency moves up by
    /// `s` semitones. libsoxr (SOXR_HQ), as the daemon uses it.
    static func resampled(_ x: [Float], semitones s: Int) throws -> [Float] {
        let resampler = try Resampler(ratio: pow(2, -Double(s) / 12))
        var out = [Float](repeating: 0, count: Int(Double(x.count) * resampler.ratio) + 4096)
        var consumed = 0, produced = 0
        try x.withUnsafeBufferPointer { input in
            try out.withUnsafeMutableBufferPointer { output in
                while true {
                    let step = try resampler.process(
                        UnsafeBufferPointer(rebasing: input[consumed...]), endOfInput: true,
                        into: UnsafeMutableBufferPointer(rebasing: output[produced...]))
                    consumed += step.consumed
                    produced += step.produced
                    if step.consumed == 0 && step.produced == 0 { break }
                }
            }
        }
        return Array(out[..<produced])
    }

    static func decisions(_ x: [Float], _ recognizer: Recognizer) throws -> [Decision] {
        let frontEnd = try FrontEnd()
        var result: [Decision] = []
        x.withUnsafeBufferPointer { frontEnd.process($0) { result.append(recognizer.decide($0.values)) } }
        return result
    }

    @Test("a sample resampled by ±1…12 semitones keeps its label in ≥ 98 % of windows",
          arguments: [("bearing-nominal.wav", "bearing"), ("misalignment-nominal.wav", "misalignment")])
    func resampledSampleKeepsItsLabel(sample: String, label: String) throws {
        let recognizer = try Recognizer(bundle: try RecognizerTests.bundle(), mode: .topk)
        let x = try Self.samples(sample)
        var kept = 0, total = 0
        for s in (-12...12) where s != 0 {
            let d = try Self.decisions(try Self.resampled(x, semitones: s), recognizer)
            kept += d.filter { $0.label == label }.count
            total += d.count
        }
        #expect(total >= 70)
        #expect(Double(kept) >= 0.98 * Double(total), "\(kept) of \(total) windows kept \(label)")
    }

    /// Two machines an octave apart over broadband noise: no single pitch explains the window, so
    /// the canonicalizer or the classifier must be unsure.
    @Test("an ambiguous mixture takes the top-K or abstain path", arguments: ["bearing-nominal.wav", "gear-nominal.wav"])
    func ambiguousMixtureFallsBack(sample: String) throws {
        let recognizer = try Recognizer(bundle: try RecognizerTests.bundle(), mode: .topk)
        let x = try Self.samples(sample)
        let octave = try Self.resampled(x + x, semitones: 12)
        var noise = SeededNoise(seed: 7)
        let mix = (0..<x.count).map { i in (x[i] + octave[i] + 0.05 * noise.uniform()) / 3 }
        let d = try Self.decisions(mix, recognizer)
        #expect(!d.isEmpty)
        #expect(d.allSatisfy { $0.fallback == .topk || $0.fallback == .abstain }, "\(d.map(\.fallback))")
        // The clean sample, for contrast, is decided directly.
        #expect(try Self.decisions(x, recognizer).contains { $0.fallback == .none })
    }
}

/// A small deterministic generator (64-bit LCG) so the test's noise is the same on every run.
struct SeededNoise {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    /// Uniform in [−1, 1).
    mutating func uniform() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(state >> 40) / Float(1 << 23) - 1
    }
}
