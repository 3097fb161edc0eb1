import EquivDSP
import Foundation

/// Writes the classifier's input for one window with a shift of k bins undone: the one place
/// that knows how each kind of classifier input is canonicalized (docs/architecture.md §2).
///
/// - `equivd_spectrogram`: the window moved down by k bins (vacated bins repeat the edge bin).
/// - `log_mel`, `waveform`: the window's audio resampled by 2^(k/(12·B)) output samples per input
///   sample (so a machine that ran k bins high is slowed back to nominal; times the model's rate
///   over equivd's), then the model's own features. The audio is taken centred on the window's
///   centre; where that would reach past the window's last sample it is moved back, and what the
///   pipeline did not have (before the stream began, or across a gap) is silence. Output the
///   input cannot reach (never, with the span `audioSamplesNeeded` keeps) would be silence too.
///
/// Every buffer and converter is made in `init`; `fill` allocates nothing.
final class ClassifierFeed {
    /// Samples at equivd's rate, ending at the window's last sample, that `fill` reads.
    let audioSamplesNeeded: Int
    private let input: ClassifierInput
    private let bins: Int, frames: Int, windowSpan: Int, range: Int
    private let resamplers: [Resampler]  // index k + range
    /// Input samples each shift's output needs; the converter reads `margin` more past them, so
    /// that its filter is not cut short at the last output sample.
    private let inputReach: [Int]  // index k + range
    private static let margin = 2
    private let logMel: LogMelSpectrogram?
    private let audio: UnsafeMutableBufferPointer<Float>  // the window's audio, aligned at its end
    private let resampled: UnsafeMutableBufferPointer<Float>

    init(input: ClassifierInput, frontEnd p: FrontEndParameters, rangeBins: Int) throws(BundleError.Field) {
        self.input = input
        (bins, frames, windowSpan, range) = (p.binCount, p.windowFrames, p.windowSpanSamples, rangeBins)
        let (modelRate, outputSamples): (Int, Int)
        switch input {
        case .equivdSpectrogram:
            (resamplers, inputReach, logMel, audioSamplesNeeded) = ([], [], nil, 0)
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
        var resamplers: [Resampler] = [], reach: [Int] = []
        for k in -rangeBins...rangeBins {
            let ratio = pow(2, Double(k) / Double(12 * p.binsPerSemitone)) * Double(modelRate) / Double(p.sampleRate)
            do {
                resamplers.append(try Resampler(ratio: ratio, quality: .fastest))
            } catch {
                throw .init(name: "models.classifier.input.sample_rate", reason: "shift \(k): \(error)")
            }
            reach.append(Int((Double(outputSamples) / ratio).rounded(.up)))
        }
        self.resamplers = resamplers
        inputReach = reach
        // Centred: reach/2 before the window's centre, the rest (and the converter's margin) after.
        let half = p.windowSpanSamples / 2
        audioSamplesNeeded = reach.map { max($0 + Self.margin, half + $0 - $0 / 2 + Self.margin) }.max()!
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
            let base = destination.baseAddress!
            for f in 0..<bins {
                let source = min(max(f + k, 0), bins - 1)
                (base + f * frames).update(from: window.baseAddress! + source * frames, count: frames)
            }
        case .logMel:
            resample(windowAudio, shift: k, into: resampled)
            logMel!.compute(UnsafeBufferPointer(resampled), into: destination)
        case .waveform:
            resample(windowAudio, shift: k, into: destination)
        }
    }

    private func resample(_ windowAudio: UnsafeBufferPointer<Float>, shift k: Int, into out: UnsafeMutableBufferPointer<Float>) {
        let kept = min(windowAudio.count, audioSamplesNeeded)
        let head = audioSamplesNeeded - kept
        audio.baseAddress!.update(repeating: 0, count: head)
        if kept > 0 { (audio.baseAddress! + head).update(from: windowAudio.baseAddress! + windowAudio.count - kept, count: kept) }
        let reach = inputReach[k + range]
        let centre = audioSamplesNeeded - windowSpan / 2
        let start = min(centre - reach / 2, audioSamplesNeeded - reach - Self.margin)
        let source = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(audio)[start..<(start + reach + Self.margin)])
        // libsamplerate fails only on arguments `init` has already checked.
        let produced = (try? resamplers[k + range].convert(source, into: out)) ?? 0
        if produced < out.count { (out.baseAddress! + produced).update(repeating: 0, count: out.count - produced) }
    }
}
