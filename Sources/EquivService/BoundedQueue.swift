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
