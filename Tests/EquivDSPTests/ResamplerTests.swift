import Foundation
import Testing

@testable import EquivDSP

/// libsoxr through `Resampler`, against the exact band-limited signal: a tone is known at every
/// instant, so the converted samples can be checked one by one.
@Suite struct ResamplerTests {
    /// `hz` sampled at `rate` for `seconds`.
    static func tone(_ hz: Double, rate: Double, seconds: Double, delay: Double = 0) -> [Float] {
        (0..<Int(rate * seconds)).map { Float(0.5 * sin(2 * .pi * hz * (Double($0) / rate + delay))) }
    }

    /// Streams `input` through `resampler` in blocks of `block`, then drains its tail.
    static func convert(_ input: [Float], with resampler: Resampler, block: Int) throws -> [Float] {
        var output = [Float](repeating: 0, count: Int(Double(input.count) * resampler.ratio) + 4096)
        var consumed = 0, produced = 0
        try input.withUnsafeBufferPointer { i in
            try output.withUnsafeMutableBufferPointer { o in
                while true {
                    let end = min(i.count, consumed + block)
                    let step = try resampler.process(
                        UnsafeBufferPointer(rebasing: i[consumed..<end]), endOfInput: end == i.count,
                        into: UnsafeMutableBufferPointer(rebasing: o[produced...]))
                    consumed += step.consumed
                    produced += step.produced
                    if end == i.count && consumed == i.count && step.produced == 0 { break }
                }
            }
        }
        return Array(output[..<produced])
    }

    @Test(arguments: [(44_100.0, 16_000.0, 1_000.0), (48_000.0, 16_000.0, 5_000.0), (16_000.0, 22_627.4, 3_000.0), (8_000.0, 16_000.0, 3_000.0)])
    func aToneComesOutAsTheSameToneAtTheNewRate(from: Double, to: Double, hz: Double) throws {
        let resampler = try Resampler(ratio: to / from)
        let output = try Self.convert(Self.tone(hz, rate: from, seconds: 2), with: resampler, block: 1_234)
        #expect(abs(output.count - Int((2 * to).rounded())) <= 2, "the whole stream, tail included")
        let expected = Self.tone(hz, rate: to, seconds: 2)
        let middle = output.count / 10..<(output.count * 9 / 10)  // the ends hold the filter's edges
        let error = middle.map { abs(output[$0] - expected[$0]) }.max()!
        #expect(error < 1e-4, "largest error \(error) against the exact tone")
    }

    @Test func aToneAboveTheNewNyquistIsRemoved() throws {
        let resampler = try Resampler(inputRate: 44_100, outputRate: 16_000)
        let output = try Self.convert(Self.tone(9_000, rate: 44_100, seconds: 1), with: resampler, block: 4_096)
        let middle = output[output.count / 10..<(output.count * 9 / 10)]
        let rms = sqrt(middle.map { Double($0 * $0) }.reduce(0, +) / Double(middle.count))
        #expect(20 * log10(rms / (0.5 / 2.squareRoot())) < -100, "aliasing \(rms)")
    }

    @Test func equalRatesPassSamplesThroughAndBadRatiosAreRefused() throws {
        let samples: [Float] = [0.1, -0.2, 0.3]
        #expect(try Self.convert(samples, with: Resampler(ratio: 1), block: 2) == samples)
        #expect(throws: ResamplerError.self) { try Resampler(ratio: 1000) }
        #expect(throws: ResamplerError.self) { try Resampler(ratio: .nan) }
    }
}
