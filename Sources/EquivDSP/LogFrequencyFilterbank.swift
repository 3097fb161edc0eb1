import Foundation

/// A sparse triangular filterbank from STFT magnitudes to log-spaced bands.
///
/// Band `k` is centred on fmin·2^(k/(12·B)) and rises linearly from the centre of band k−1 and falls
/// to the centre of band k+1, each side at least one FFT bin wide so that no low band is empty.
/// Each band is then scaled so that a unit-amplitude sinusoid at its centre frequency reads exactly
/// 1.0. With that calibration a harmonic sound has the same band values wherever it sits, and
/// playing it s semitones higher moves it by s·B bands: pitch becomes a translation.
///
/// Only the nonzero weights are stored (a dense 168 × 4097 matrix would be 99 % zeros), each band's
/// padded with zeros to a multiple of eight so that `apply` runs in whole SIMD lanes.
public struct LogFrequencyFilterbank: Sendable {
    public let bandCount: Int
    /// FFT bins that any band reads; magnitudes outside it are never needed.
    public let fftBinRange: Range<Int>
    /// Length a magnitude buffer must have: the last band's padding reads past the last FFT bin
    /// (those entries must be finite; their weights are 0).
    public let magnitudeCount: Int
    /// First FFT bin of each band.
    private let firstFFTBin: [Int]
    /// Band k's weights are `weights[weightOffsets[k] ..< weightOffsets[k + 1]]`, a multiple of 8.
    private let weightOffsets: [Int]
    private var weights: [Float]

    /// Builds the triangles for `parameters`, then calibrates each band with a sinusoid at its
    /// centre frequency run through `window` and `fft`, the same path every frame takes.
    init(parameters p: FrontEndParameters, window: [Float], fft: RealFFT) {
        let binHz = Double(p.sampleRate) / Double(p.fftSize)
        let lastFFTBin = p.fftSize / 2
        var firstFFTBin: [Int] = []
        var weightOffsets: [Int] = [0]
        var weights: [Float] = []
        var lastBin = 0
        for k in 0..<p.binCount {
            let center = p.centerFrequency(ofBin: Double(k))
            let below = max(center - p.centerFrequency(ofBin: Double(k - 1)), binHz)
            let above = max(p.centerFrequency(ofBin: Double(k + 1)) - center, binHz)
            let first = max(Int(((center - below) / binHz).rounded(.down)) + 1, 0)
            let last = min(Int(((center + above) / binHz).rounded(.up)) - 1, lastFFTBin)
            firstFFTBin.append(first)
            for j in first...max(first, last) {
                let f = Double(j) * binHz
                let w = f < center ? 1 - (center - f) / below : 1 - (f - center) / above
                weights.append(Float(max(w, 0)))
            }
            if last >= lastBin { lastBin = last }
            while weights.count % 8 != 0 { weights.append(0) }
            weightOffsets.append(weights.count)
        }
        self.bandCount = p.binCount
        self.firstFFTBin = firstFFTBin
        self.weightOffsets = weightOffsets
        self.fftBinRange = firstFFTBin[0]..<(lastBin + 1)
        self.magnitudeCount = max(lastFFTBin + 1, firstFFTBin[p.binCount - 1] + weights.count - weightOffsets[p.binCount - 1])
        self.weights = weights

        // Calibrate: response of each band to cos(2π·center·t), then divide it out.
        var magnitudes = [Float](repeating: 0, count: magnitudeCount)
        var response = [Float](repeating: 0, count: p.binCount)
        for k in 0..<p.binCount {
            // cos(ω·n) by the recurrence c(n+1) = 2·cos ω·c(n) − c(n−1), in Double: two cosines per
            // band instead of fftSize (a million calls in all were a tenth of the start-up).
            let omega = 2 * Double.pi * p.centerFrequency(ofBin: Double(k)) / Double(p.sampleRate)
            let twiceCos = 2 * cos(omega)
            var (previous, current) = (cos(-omega), 1.0)
            for n in 0..<p.fftSize {
                fft.input[n] = Float(current) * window[n]
                (previous, current) = (current, twiceCos * current - previous)
            }
            fft.execute()
            magnitudes.withUnsafeMutableBufferPointer { m in
                fft.magnitudes(bins: fftBinRange, into: m)
                response.withUnsafeMutableBufferPointer { r in apply(magnitudes: UnsafeBufferPointer(m), into: r) }
            }
            let scale = 1 / response[k]
            for i in weightOffsets[k]..<weightOffsets[k + 1] {
                self.weights[i] *= scale
            }
        }
    }

    /// Band values from FFT magnitudes indexed by FFT bin; `magnitudes` holds `magnitudeCount`.
    public func apply(magnitudes: UnsafeBufferPointer<Float>, into bands: UnsafeMutableBufferPointer<Float>) {
        let m = UnsafeRawPointer(magnitudes.baseAddress!)
        let stride = MemoryLayout<Float>.stride
        weights.withUnsafeBytes { w in
            for k in 0..<bandCount {
                // Dot product of the band's weights with its run of magnitudes, eight at a time.
                var weight = w.baseAddress! + weightOffsets[k] * stride
                let end = w.baseAddress! + weightOffsets[k + 1] * stride
                var magnitude = m + firstFFTBin[k] * stride
                var lanes = SIMD8<Float>()
                while weight < end {
                    lanes += weight.loadUnaligned(as: SIMD8<Float>.self) * magnitude.loadUnaligned(as: SIMD8<Float>.self)
                    weight += 8 * stride
                    magnitude += 8 * stride
                }
                bands[k] = lanes.sum()
            }
        }
    }
}
