import EquivModel
import Foundation

/// Mode `partial` (docs/architecture.md §9): moves back only what turns with the machine. With E
/// the window's magnitudes (exp X less the front end's floor), the separator's share of each bin
/// that stays at its frequency gives F̂ = min(share · exp X, E); FixedPose reads from the log of
/// F̂'s time mean whether F̂ moved with the window too (a resampled recording: j = k) or stayed
/// (the machine changed speed: j = 0); then
///
///     X̃ = log(T₋ⱼ F̂ + T₋ₖ(E − F̂) + floor),
///
/// with k the canonicalizer's shift and vacated bins repeating the edge bin, as everywhere
/// (`equivtrain.partial.canonical_windows` is the reference). Buffers are made in `init`.
final class FixedPartCanonicalizer {
    private let separator: InferenceSession
    private let pose: InferenceSession
    private let bins: Int, frames: Int, range: Int
    private let floor: Float
    /// F̂ and E − F̂ of the window, bins × frames.
    private let fixed: UnsafeMutableBufferPointer<Float>
    private let moving: UnsafeMutableBufferPointer<Float>

    /// `separator` maps a window [1, 1, bins, frames] to the fixed share of each bin [1, bins];
    /// `pose` maps log(F̂'s time mean) [1, 1, bins, 1] to scores of shifts −range…range [1, 2·range + 1].
    init(separator: InferenceSession, pose: InferenceSession, bins: Int, frames: Int, range: Int, floor: Float) {
        (self.separator, self.pose) = (separator, pose)
        (self.bins, self.frames, self.range, self.floor) = (bins, frames, range, floor)
        fixed = .allocate(capacity: bins * frames)
        moving = .allocate(capacity: bins * frames)
    }

    deinit {
        fixed.deallocate()
        moving.deallocate()
    }

    /// Writes X̃ of `window` (bins × frames log magnitudes) with the canonicalizer's shift `k` into
    /// `destination` and returns j, the shift the fixed part was moved back by.
    func canonicalize(_ window: UnsafeBufferPointer<Float>, shift k: Int, into destination: UnsafeMutableBufferPointer<Float>) -> Int {
        _ = separator.inputs[0].buffer.update(fromContentsOf: window)
        separator.run()
        let share = separator.outputs[0].buffer
        let logMean = pose.inputs[0].buffer
        for f in 0..<bins {
            var sum: Float = 0
            for i in f * frames..<(f + 1) * frames {
                let magnitude = exp(window[i])
                let kept = share[f] * magnitude
                sum += kept
                let heard = max(magnitude - floor, 0)
                fixed[i] = min(max(kept, 0), heard)
                moving[i] = heard - fixed[i]
            }
            logMean[f] = log(sum / Float(frames) + floor)
        }
        pose.run()
        let scores = pose.outputs[0].buffer
        let j = scores[k + range] > scores[range] ? k : 0
        for f in 0..<bins {
            let fixedRow = min(max(f + j, 0), bins - 1) * frames
            let movingRow = min(max(f + k, 0), bins - 1) * frames
            for t in 0..<frames {
                destination[f * frames + t] = log(fixed[fixedRow + t] + moving[movingRow + t] + floor)
            }
        }
        return j
    }
}
