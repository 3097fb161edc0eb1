import EquivAudio
import EquivDSP
import Foundation
import Testing

/// The property the product rests on (docs/architecture.md §2): playing a sound s semitones higher moves its
/// log-frequency spectrogram by s·B bins. The shifted versions are made the way a speed change makes
/// them, by resampling with libsoxr (`Resampler`), not by synthesizing at the new pitch.
@Suite struct ShiftPropertyTests {
    static let parameters = FrontEndParameters()
    static var binsPerOctave: Double { Double(12 * parameters.binsPerSemitone) }

    /// `partials` (frequency multiple, amplitude) of `f0`, 4 s at the front end's rate.
    static func harmonicSound(f0: Double, partials: [(Double, Double)], seconds: Double = 4) -> [Float] {
        let rate = Double(parameters.sampleRate)
        return (0..<Int(seconds * rate)).map { n in
            let t = Double(n) / rate
            return Float(partials.reduce(0) { $0 + $1.1 * sin(2 * .pi * f0 * $1.0 * t + $1.0) })
        }
    }

    /// Plays `samples` s semitones higher: resample by 2^(−s/12) and keep the nominal rate.
    static func playShifted(_ samples: [Float], semitones s: Int) throws -> [Float] {
        let resampler = try Resampler(ratio: pow(2, -Double(s) / 12))
        var output = [Float](repeating: 0, count: Int(Double(samples.count) * resampler.ratio) + 4096)
        var produced = 0
        var consumed = 0
        try samples.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { out in
                while true {
                    let step = try resampler.process(
                        UnsafeBufferPointer(rebasing: input[consumed...]), endOfInput: true,
                        into: UnsafeMutableBufferPointer(rebasing: out[produced...]))
                    consumed += step.consumed
                    produced += step.produced
                    if step.produced == 0 && consumed == input.count { break }
                }
            }
        }
        return Array(output[..<produced])
    }

    /// Log-band values averaged over all frames, skipping the first and last half second where
    /// the resampler's filter settles.
    static func meanSpectrum(_ samples: [Float]) throws -> [Double] {
        let spectrogram = try LogFrequencySpectrogram(parameters: parameters)
        var frames: [[Float]] = []
        samples.withUnsafeBufferPointer { s in spectrogram.process(s) { frames.append(Array($0)) } }
        let usable = frames.dropFirst(50).dropLast(50)
        #expect(!usable.isEmpty)
        return (0..<parameters.binCount).map { k in usable.reduce(0) { $0 + Double($1[k]) } / Double(usable.count) }
    }

    /// Fractional position of the local maximum nearest `guess`, refined by a parabola through
    /// the peak and its neighbours.
    static func peak(in spectrum: [Double], near guess: Double) -> Double {
        let lo = max(1, Int(guess.rounded()) - 2)
        let hi = min(spectrum.count - 2, Int(guess.rounded()) + 2)
        let k = (lo...hi).max { spectrum[$0] < spectrum[$1] }!
        let (a, b, c) = (spectrum[k - 1], spectrum[k], spectrum[k + 1])
        let denominator = a - 2 * b + c
        return Double(k) + (denominator < 0 ? 0.5 * (a - c) / denominator : 0)
    }

    static func expectedBin(_ frequency: Double) -> Double {
        binsPerOctave * log2(frequency / parameters.fmin)
    }

    @Test("every partial inside [2·fmin, fmax/2] lands within 0.5 bin of s·B from its nominal place",
          arguments: -12...12)
    func partialPositions(semitones s: Int) throws {
        let f0 = 150.0
        let partials = (1...6).map { (Double($0), 0.5 / Double($0)) }
        let spectrum = try Self.meanSpectrum(try Self.playShifted(Self.harmonicSound(f0: f0, partials: partials), semitones: s))
        let p = Self.parameters
        var checked = 0
        for (multiple, _) in partials {
            let frequency = f0 * multiple * pow(2, Double(s) / 12)
            guard frequency >= 2 * p.fmin && frequency <= p.fmax / 2 else { continue }
            let expected = Self.expectedBin(frequency)
            let error = Self.peak(in: spectrum, near: expected) - expected
            #expect(abs(error) <= 0.5, "partial \(multiple)×\(f0) Hz shifted \(s) st at \(frequency) Hz: error \(error) bins")
            checked += 1
        }
        #expect(checked >= 4)
    }

    @Test("a pure tone moves by s·B bins, within 0.5 bin, across the band", arguments: [130.0, 480.0, 1900.0])
    func toneMoves(f0: Double) throws {
        let tone = Self.harmonicSound(f0: f0, partials: [(1, 0.5)])
        let nominal = Self.peak(in: try Self.meanSpectrum(tone), near: Self.expectedBin(f0))
        for s in -12...12 {
            let frequency = f0 * pow(2, Double(s) / 12)
            guard frequency >= 2 * Self.parameters.fmin && frequency <= Self.parameters.fmax / 2 else { continue }
            let shifted = Self.peak(in: try Self.meanSpectrum(try Self.playShifted(tone, semitones: s)), near: Self.expectedBin(frequency))
            let moved = shifted - nominal
            #expect(abs(moved - Double(s * Self.parameters.binsPerSemitone)) <= 0.5, "\(f0) Hz shifted \(s) st moved \(moved) bins")
        }
    }

    @Test("the shift maximizing the correlation of the spectrograms is exactly s·B", arguments: -12...12)
    func correlationShift(semitones s: Int) throws {
        let partials = (1...8).map { (Double($0), 0.6 / Double($0)) }
        let sound = Self.harmonicSound(f0: 200, partials: partials)
        let nominal = try Self.meanSpectrum(sound)
        let shifted = try Self.meanSpectrum(try Self.playShifted(sound, semitones: s))
        let range = 12 * Self.parameters.binsPerSemitone
        let best = (-range...range).max { correlation(nominal, shifted, lag: $0) < correlation(nominal, shifted, lag: $1) }!
        #expect(best == s * Self.parameters.binsPerSemitone)
    }

    /// Pearson correlation of a[k] and b[k + lag] over the bins where both exist.
    func correlation(_ a: [Double], _ b: [Double], lag: Int) -> Double {
        let ks = max(0, -lag)..<min(a.count, b.count - lag)
        let x = ks.map { a[$0] }, y = ks.map { b[$0 + lag] }
        let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            sxy += (x[i] - mx) * (y[i] - my)
            sxx += (x[i] - mx) * (x[i] - mx)
            syy += (y[i] - my) * (y[i] - my)
        }
        return sxy / (sxx * syy).squareRoot()
    }
}
