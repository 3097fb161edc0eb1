import Foundation

/// A FIFO between two pipeline stages with a fixed capacity (docs/architecture.md §3).
///
/// Live audio cannot wait, so a full queue drops its oldest item and counts it (`.dropOldest`);
/// a replayed file can, so there the producer waits for room (`.wait`) and nothing is lost.
final class BoundedQueue<Element>: @unchecked Sendable {
    enum Overflow: Sendable { case dropOldest, wait }

    let capacity: Int
    let overflow: Overflow
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var items: [Element?]
    private var head = 0
    private var size = 0
    private var droppedCount = 0
    private var closed = false

    init(capacity: Int, overflow: Overflow) {
        precondition(capacity > 0, "queue capacity must be positive")
        self.capacity = capacity
        self.overflow = overflow
        items = Array(repeating: nil, count: capacity)
    }

    var count: Int { condition.withLock { size } }
    /// Items dropped because the queue was full.
    var dropped: Int { condition.withLock { droppedCount } }

    /// Appends `item`; returns false (and drops the item) once the queue is closed.
    @discardableResult
    func push(_ item: Element) -> Bool {
        condition.withLock {
            while overflow == .wait && size == capacity && !closed { condition.wait() }
            guard !closed else { return false }
            if size == capacity {
                items[head] = nil
                head = (head + 1) % capacity
                size -= 1
                droppedCount += 1
            }
            items[(head + size) % capacity] = item
            size += 1
            return true
        }
    }

    /// Removes the oldest item, or returns nil when the queue is empty. Never waits.
    func pop() -> Element? {
        condition.withLock {
            guard size > 0 else { return nil }
            let item = items[head]
            items[head] = nil
            head = (head + 1) % capacity
            size -= 1
            condition.signal()
            return item
        }
    }

    /// Refuses further pushes and wakes a producer waiting for room.
    func close() {
        condition.withLock {
            closed = true
            condition.broadcast()
        }
    }
}

/// The last few seconds of the analysed stream, so that a window the recognizer abstained on can
/// be written out with some context before it (`ClipSpool`). The DSP stage writes, the inference
/// stage reads; a span already overwritten is simply gone.
final class AudioHistory: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [Float]
    /// Samples written since the stream began; sample i sits at index i % capacity.
    private var total = 0

    init(capacity: Int) {
        samples = Array(repeating: 0, count: max(1, capacity))
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

    /// Stream samples `range` (indices since the stream began), or nil if any is no longer kept.
    func copy(_ range: Range<Int>) -> [Float]? {
        lock.withLock {
            guard range.lowerBound >= max(0, total - samples.count), range.upperBound <= total else { return nil }
            return range.map { samples[$0 % samples.count] }
        }
    }
}
