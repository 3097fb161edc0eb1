import Foundation

/// A bounded single-producer, single-consumer FIFO of samples between the capture thread and the
/// reader. The producer never waits: when the ring is full the oldest samples are overwritten and
/// counted in `droppedSamples`, so memory stays fixed however far the reader falls behind.
public final class SampleRing: @unchecked Sendable {
    public let capacity: Int
    private let storage: UnsafeMutableBufferPointer<Float>
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var head = 0  // index of the oldest sample
    private var count = 0
    private var dropped = 0
    private var closed = false

    public init(capacity: Int) {
        precondition(capacity > 0, "ring capacity must be positive")
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
        storage.initialize(repeating: 0)
    }

    deinit { storage.deallocate() }

    /// Samples overwritten before they were read.
    public var droppedSamples: Int { condition.withLock { dropped } }
    /// Samples waiting to be read.
    public var availableSamples: Int { condition.withLock { count } }

    /// Appends `samples`, overwriting the oldest ones if there is no room. Never blocks for long.
    public func write(_ samples: UnsafeBufferPointer<Float>) {
        guard !samples.isEmpty else { return }
        condition.withLock {
            // Only the newest `capacity` samples of a huge write can survive.
            let kept = UnsafeBufferPointer(rebasing: samples.suffix(capacity))
            dropped += samples.count - kept.count
            let overflow = max(0, count + kept.count - capacity)
            head = (head + overflow) % capacity
            count -= overflow
            dropped += overflow
            var tail = (head + count) % capacity
            for sample in kept {
                storage[tail] = sample
                tail = tail == capacity - 1 ? 0 : tail + 1
            }
            count += kept.count
            condition.signal()
        }
    }

    /// Marks the end of the stream: readers drain what is left, then get 0.
    public func close() {
        condition.withLock {
            closed = true
            condition.broadcast()
        }
    }

    /// Waits until at least one sample is available (or the ring is closed), then moves up to
    /// `buffer.count` of them into `buffer`. Returns 0 only once the ring is closed and empty.
    public func read(into buffer: UnsafeMutableBufferPointer<Float>) -> Int {
        condition.withLock {
            while count == 0 && !closed { condition.wait() }
            let n = min(count, buffer.count)
            for i in 0..<n { buffer[i] = storage[(head + i) % capacity] }
            head = (head + n) % capacity
            count -= n
            return n
        }
    }
}
