import Foundation

/// The last few seconds of the analysed stream: for the clip of a window the recognizer abstained
/// on (with some context before it), and for the audio a classifier with its own input reads. The
/// DSP stage writes; a span already overwritten is simply gone.
final class AudioHistory: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [Float]
    /// Samples written since the stream began; sample i sits at index i % capacity.
    private var total = 0
    /// The first sample still kept: `total - capacity` once full, later while a grown buffer fills.
    private var keptFrom = 0

    init(capacity: Int) {
        samples = Array(repeating: 0, count: max(1, capacity))
    }

    /// Keeps at least `capacity` samples from now on, and everything kept so far.
    func reserve(_ capacity: Int) {
        lock.withLock {
            guard capacity > samples.count else { return }
            let kept = oldestKept..<total
            var grown = [Float](repeating: 0, count: capacity)
            for i in kept { grown[i % capacity] = samples[i % samples.count] }
            samples = grown
            keptFrom = kept.lowerBound
        }
    }

    func append(_ block: UnsafeBufferPointer<Float>) {
        lock.withLock {
            let capacity = samples.count
            total += max(0, block.count - capacity)
            for x in block.suffix(capacity) {
                samples[total % capacity] = x
                total += 1
            }
        }
    }

    /// Moves the stream on by `count` samples that never arrived (a capture gap); what was kept
    /// before them stays readable by its old indices.
    func skip(_ count: Int) {
        lock.withLock {
            let capacity = samples.count
            for _ in 0..<min(count, capacity) {
                samples[total % capacity] = 0
                total += 1
            }
            total += max(0, count - capacity)
        }
    }

    /// The first stream sample still kept.
    var oldest: Int { lock.withLock { oldestKept } }

    private var oldestKept: Int { max(keptFrom, total - samples.count) }

    /// Stream samples `range` (indices since the stream began), or nil if any is no longer kept.
    func copy(_ range: Range<Int>) -> [Float]? {
        lock.withLock {
            guard range.lowerBound >= oldestKept, range.upperBound <= total else { return nil }
            return range.map { samples[$0 % samples.count] }
        }
    }

    /// The `count` samples before stream position `end`, silence for any not kept (before the
    /// stream began, or already overwritten).
    func samples(_ count: Int, endingAt end: Int) -> [Float] {
        lock.withLock {
            let oldest = oldestKept
            return ((end - count)..<end).map { $0 >= oldest && $0 < total ? samples[$0 % samples.count] : 0 }
        }
    }
}
