import Foundation

/// A bounded single-producer, single-consumer FIFO of samples between the capture thread and the
/// reader. The producer never waits: when the ring is full the oldest samples are overwritten,
/// so memory stays fixed however far the reader falls behind.
///
/// Lost audio is never hidden. The ring keeps stream positions: samples it overwrote, and gaps
/// the producer marks (an overrun at the device), leave a hole between the last sample read and
/// the next. `read` never returns samples from both sides of a hole, and after each read
/// `samplesLost` counts every sample lost before the ones it returned.
public final class SampleRing: @unchecked Sendable {
    public let capacity: Int
    private let storage: UnsafeMutableBufferPointer<Float>
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var head = 0  // storage index of the oldest sample
    private var count = 0
    /// The contiguous stretches held, oldest first: stream position of the first sample and length.
    private var runs: [(start: Int, count: Int)] = []
    /// Stream position of the next sample written (samples written plus gaps marked).
    private var writePosition = 0
    /// Stream position just past the last sample read.
    private var readPosition = 0
    private var lost = 0
    private var closed = false

    public init(capacity: Int) {
        precondition(capacity > 0, "ring capacity must be positive")
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
        storage.initialize(repeating: 0)
    }

    deinit { storage.deallocate() }

    /// Samples lost before the samples the last `read` returned: overwritten before they were
    /// read, or marked by the producer as a gap. Read it on the reader's thread, after a read.
    public var samplesLost: Int { condition.withLock { lost } }
    /// Samples waiting to be read.
    public var availableSamples: Int { condition.withLock { count } }

    /// Appends `samples`, overwriting the oldest ones if there is no room. Never blocks for long.
    public func write(_ samples: UnsafeBufferPointer<Float>) {
        guard !samples.isEmpty else { return }
        condition.withLock {
            // Only the newest `capacity` samples of a huge write can survive.
            writePosition += samples.count - min(samples.count, capacity)
            let kept = UnsafeBufferPointer(rebasing: samples.suffix(capacity))
            discardOldest(max(0, count + kept.count - capacity))
            var tail = (head + count) % capacity
            for sample in kept {
                storage[tail] = sample
                tail = tail == capacity - 1 ? 0 : tail + 1
            }
            if let last = runs.last, last.start + last.count == writePosition {
                runs[runs.count - 1].count += kept.count
            } else {
                runs.append((writePosition, kept.count))
            }
            writePosition += kept.count
            count += kept.count
            condition.signal()
        }
    }

    /// Records that `samples` of the stream were lost before the next write (a device overrun):
    /// the reader sees a hole there, as if the ring had overwritten them.
    public func markGap(samples: Int) {
        guard samples > 0 else { return }
        condition.withLock { writePosition += samples }
    }

    /// Marks the end of the stream: readers drain what is left, then get 0.
    public func close() {
        condition.withLock {
            closed = true
            condition.broadcast()
        }
    }

    /// Waits until at least one sample is available (or the ring is closed), then moves up to
    /// `buffer.count` of them into `buffer`, never past a hole. Returns 0 only once the ring is
    /// closed and empty.
    public func read(into buffer: UnsafeMutableBufferPointer<Float>) -> Int {
        condition.withLock {
            while count == 0 && !closed { condition.wait() }
            guard let first = runs.first else { return 0 }
            let n = min(first.count, buffer.count)
            for i in 0..<n { buffer[i] = storage[(head + i) % capacity] }
            lost += first.start - readPosition
            readPosition = first.start + n
            consumeHead(n)
            return n
        }
    }

    /// Drops the `n` oldest samples (called with the lock held).
    private func discardOldest(_ n: Int) {
        var left = n
        while left > 0 {
            let take = min(left, runs[0].count)
            consumeHead(take)
            left -= take
        }
    }

    /// Moves the head `n` samples on within the first run (called with the lock held).
    private func consumeHead(_ n: Int) {
        head = (head + n) % capacity
        count -= n
        runs[0].start += n
        runs[0].count -= n
        if runs[0].count == 0 { runs.removeFirst() }
    }
}
