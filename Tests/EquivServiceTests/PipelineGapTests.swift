import EquivAudio
import EquivDSP
import Foundation
import Synchronization
import Testing

@testable import EquivService

/// A capture ring that overruns: the pipeline must count the lost audio in its stream clock,
/// start the front end afresh after it, and report it on the next window, never a window made of
/// audio from both sides of the hole.
@Suite struct PipelineGapTests {
    /// A live source as the pipeline sees it: a real `SampleRing` that a test writes into.
    final class RingSource: AudioSource, @unchecked Sendable {
        let ring: SampleRing
        let sampleRate = 16_000
        init(seconds: Int) { ring = SampleRing(capacity: seconds * sampleRate) }
        func read(into buffer: UnsafeMutableBufferPointer<Float>) throws -> Int { ring.read(into: buffer) }
        var samplesLost: Int { ring.samplesLost }
    }

    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Models").standardized.path

    /// Deterministic audio with structure: two tones over noise.
    static func audio(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { i in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let noise = Float(Int64(bitPattern: state) >> 40) / Float(1 << 23) * 0.01
            let t = Float(i) / 16_000
            return 0.3 * sin(2 * .pi * 220 * t) + 0.1 * sin(2 * .pi * 1375 * t) + noise
        }
    }

    /// The windows a fresh front end makes of `samples`.
    static func windows(of samples: [Float]) throws -> [[Float]] {
        let frontEnd = try FrontEnd()
        var out: [[Float]] = []
        samples.withUnsafeBufferPointer { frontEnd.process($0) { out.append(Array($0.values)) } }
        return out
    }

    @Test("a ring overrun: stream times count the lost audio, the next window carries the gap, no window spans it")
    func overrunIsAGap() throws {
        let rate = 16_000
        let source = RingSource(seconds: 4)
        let decided = Mutex<[AnalysedWindow]>([])
        var configuration = ServiceConfiguration()
        configuration.model.bundle = Self.models
        configuration.pipeline.windowQueue = 16
        let recorder = try ClipRecorder(configuration: configuration, frontEnd: FrontEndParameters())
        let pipeline = Pipeline(
            source: source, sourceName: "ring", frontEnd: try FrontEnd(),
            recognition: try Recognition(configuration: configuration.model, frontEnd: FrontEndParameters()),
            recorder: recorder, windowQueue: 16, dropWhenFull: false)
        pipeline.start(onDecision: { window, _ in decided.withLock { $0.append(window) } })

        // 2.5 s read in full, then 6 s written at once into the 4-s ring: its first 2 s are lost.
        let before = Self.audio(40_000, seed: 1)
        let burst = Self.audio(96_000, seed: 2)
        before.withUnsafeBufferPointer { source.ring.write($0) }
        let deadline = Date(timeIntervalSinceNow: 20)
        while pipeline.samplesAnalysed < before.count && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(pipeline.samplesAnalysed == before.count)
        burst.withUnsafeBufferPointer { source.ring.write($0) }
        source.ring.close()
        #expect(pipeline.wait(timeout: 30))

        let lost = 32_000
        #expect(pipeline.samplesLost == lost && pipeline.gaps == 1)
        #expect(pipeline.samplesAnalysed == before.count + burst.count - lost)
        let expectedBefore = try Self.windows(of: before)
        let expectedAfter = try Self.windows(of: Array(burst[lost...]))
        let got = decided.withLock { $0 }
        #expect(expectedBefore.count == 2 && expectedAfter.count == 5)
        try #require(got.count == expectedBefore.count + expectedAfter.count)
        #expect(got.map(\.seq) == Array(0..<got.count), "seq runs on: no window was dropped")

        let p = FrontEndParameters()
        let centre = Double(p.fftSize / 2) / Double(rate)
        let resumed = before.count + lost  // stream position of the first sample after the gap
        for (i, w) in got.enumerated() {
            let after = i >= expectedBefore.count
            let k = after ? i - expectedBefore.count : i
            let origin = after ? resumed : 0
            #expect(w.values == (after ? expectedAfter[k] : expectedBefore[k]), "window \(i) is made of one stretch")
            #expect(abs(w.streamStart - (Double(origin + k * p.windowStepFrames * p.hopLength) / Double(rate) + centre)) < 1e-9)
            #expect(w.samples.lowerBound == origin + k * p.windowStepFrames * p.hopLength)
            #expect(w.unbrokenSince == origin)
            #expect(w.gapBefore == (i == expectedBefore.count ? lost : 0), "window \(i)")
            #expect(abs((w.wallEnd - w.wallStart) - (w.streamEnd - w.streamStart)) < 1e-6)
        }
        // The clip audio of the first window after the gap starts after the gap.
        let first = got[expectedBefore.count]
        #expect(recorder.history.copy(first.samples) == Array(burst[lost..<(lost + p.windowSpanSamples)]))
    }
}
