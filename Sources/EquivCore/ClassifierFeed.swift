import EquivDSP
import Foundation

/// Writes the classifier's input for one window with a shift of k bins undone: the one place
/// that knows how each kind of classifier input is canonicalized (docs/architecture.md §2).
///
/// - `equivd_spectrogram`: the window moved down by k bins (vacated bins repeat the edge bin).
/// - `log_mel`, `waveform`: the window's audio resampled by 2^(k/(12·B)) output samples per input
///   sample (so a machine that ran k bins high is slowed back to nominal; times the model's rate
///   over equivd's) with `SincResampler`, then the model's own features. The audio is taken
///   centred on the window's centre; where that would reach past the window's last sample it is
///   moved back, and what the pipeline did not have (before the stream began, or across a gap)
///   is silence (docs/architecture.md §8).
///
/// Every buffer and converter is made in `init`; `fill` allocates nothing.
final class ClassifierFeed {
    /// Samples at equivd's rate, ending at the window's last sample, that `fill` reads.
    let audioSamplesNeeded: Int
    let input: ClassifierInput
    private let bins: Int, frames: Int, windowSpan: Int, range: Int
    private let resamplers: [SincResampler]  // index k + range
    /// Input samples each shift's output spans; the resampler reads its half-width more on each
    /// side (`margin`, the widest's).
    private let inputReach: [Int]  // index k + range
    private let margin: Int
    private let logMel: LogMelSpectrogram?
    private let audio: UnsafeMutableBufferPointer<Float>  // a short window's audio behind silence
    private let resampled: UnsafeMutableBufferPointer<Float>

    init(input: ClassifierInput, frontEnd p: FrontEndParameters, rangeBins: Int) throws(BundleError.Field) {
        self.input = input
        (bins, frames, windowSpan, range) = (p.binCount, p.windowFrames, p.windowSpanSamples, rangeBins)
        let (modelRate, outputSamples): (Int, Int)
        switch input {
        case .equivdSpectrogram:
            (resamplers, inputReach, logMel, audioSamplesNeeded, margin) = ([], [], nil, 0, 0)
            audio = .allocate(capacity: 0)
            resampled = .allocate(capacity: 0)
            return
        case .logMel(let parameters, _):
            do {
                logMel = try LogMelSpectrogram(parameters: parameters)
            } catch {
                throw .init(name: "models.classifier.input", reason: "\(error)")
            }
            (modelRate, outputSamples) = (parameters.sampleRate, parameters.patchSamples)
        case .waveform(let rate, let samples, _):
            logMel = nil
            (modelRate, outputSamples) = (rate, samples)
        }
        var ratios: [Double] = [], reach: [Int] = []
        for k in -rangeBins...rangeBins {
            let ratio = pow(2, Double(k) / Double(12 * p.binsPerSemitone)) * Double(modelRate) / Double(p.sampleRate)
            guard ratio >= 0.125 && ratio <= 8 else {
                throw .init(name: "models.classifier.input.sample_rate", reason: "shift \(k) bins needs a resampling ratio of \(ratio), outside 1/8...8")
            }
            ratios.append(ratio)
            reach.append(Int((Double(outputSamples) / ratio).rounded(.up)))
        }
        let widest = ratios.map { SincResampler.halfWidth(ratio: $0) }.max()! + 1
        let resamplers = zip(ratios, reach).map { SincResampler(ratio: $0, maximumInput: $1 + 2 * widest) }
        margin = widest
        self.resamplers = resamplers
        inputReach = reach
        // Centred: reach/2 before the window's centre, the rest after, and the margin on both sides.
        let half = p.windowSpanSamples / 2
        audioSamplesNeeded = reach.map { max($0 + 2 * widest, half + $0 - $0 / 2 + widest) }.max()!
        audio = .allocate(capacity: audioSamplesNeeded)
        audio.initialize(repeating: 0)
        resampled = .allocate(capacity: outputSamples)
        resampled.initialize(repeating: 0)
    }

    deinit {
        audio.deallocate()
        resampled.deallocate()
    }

    /// Fills `destination` (the classifier's input) for `window` (equivd's spectrogram) and
    /// `windowAudio` (the samples before the window's end; fewer than `audioSamplesNeeded` are
    /// preceded by silence) with `shift` bins undone.
    func fill(
        _ destination: UnsafeMutableBufferPointer<Float>, window: UnsafeBufferPointer<Float>,
        windowAudio: UnsafeBufferPointer<Float>, shift k: Int
    ) {
        switch input {
        case .equivdSpectrogram:
            Self.translate(window, bins: bins, frames: frames, shift: k, into: destination)
        case .logMel:
            resample(windowAudio, shift: k, into: resampled)
            logMel!.compute(UnsafeBufferPointer(resampled), into: destination)
        case .waveform:
            resample(windowAudio, shift: k, into: destination)
        }
    }

    /// `window` (bins × frames) moved down by `k` bins; vacated bins repeat the edge bin.
    static func translate(_ window: UnsafeBufferPointer<Float>, bins: Int, frames: Int, shift k: Int, into destination: UnsafeMutableBufferPointer<Float>) {
        let base = destination.baseAddress!
        for f in 0..<bins {
            let source = min(max(f + k, 0), bins - 1)
            (base + f * frames).update(from: window.baseAddress! + source * frames, count: frames)
        }
    }

    private func resample(_ windowAudio: UnsafeBufferPointer<Float>, shift k: Int, into out: UnsafeMutableBufferPointer<Float>) {
        // The last `audioSamplesNeeded` samples, read in place; copied behind silence only when
        // fewer were handed over (after a reload to a model that needs more).
        let tail: UnsafeBufferPointer<Float>
        if windowAudio.count >= audioSamplesNeeded {
            tail = UnsafeBufferPointer(rebasing: windowAudio[(windowAudio.count - audioSamplesNeeded)...])
        } else {
            let head = audioSamplesNeeded - windowAudio.count
            audio.baseAddress!.update(repeating: 0, count: head)
            if !windowAudio.isEmpty { (audio.baseAddress! + head).update(from: windowAudio.baseAddress!, count: windowAudio.count) }
            tail = UnsafeBufferPointer(audio)
        }
        let reach = inputReach[k + range]
        let centre = audioSamplesNeeded - windowSpan / 2
        let start = min(centre - reach / 2, audioSamplesNeeded - reach - margin)
        let source = UnsafeBufferPointer(rebasing: tail[(start - margin)..<(start + reach + margin)])
        resamplers[k + range].convert(source, from: margin, into: out)
    }
}
