import EquivAudio
import Foundation
import Synchronization

/// A file played to the pipeline as a stream: at the pace of real time (as if a device delivered
/// it; `speed` times faster for soak tests) or as fast as it can be read, once or in a loop,
/// until `stop()`.
final class FileStreamSource: AudioSource, @unchecked Sendable {
    let path: String
    let sampleRate: Int
    private let realTime: Bool
    private let speed: Double
    private let loop: Bool
    private var file: AudioFileSource
    private let started = ContinuousClock.now
    private var delivered = 0
    private let stopped = Atomic<Bool>(false)

    init(path: String, sampleRate: Int, realTime: Bool, speed: Double = 1, loop: Bool) throws(AudioFileError) {
        self.path = path
        self.sampleRate = sampleRate
        self.realTime = realTime
        self.speed = speed
        self.loop = loop
        file = try AudioFileSource(path: path, sampleRate: sampleRate)
    }

    func stop() { stopped.store(true, ordering: .releasing) }

    func read(into buffer: UnsafeMutableBufferPointer<Float>) throws -> Int {
        guard !stopped.load(ordering: .acquiring) else { return 0 }
        // A real device hands over about a tenth of a second at a time.
        let chunk = realTime ? UnsafeMutableBufferPointer(rebasing: buffer.prefix(max(1, Int(Double(sampleRate) / 10 * speed)))) : buffer
        var n = try file.read(into: chunk)
        if n == 0 && loop {
            file = try AudioFileSource(path: path, sampleRate: sampleRate)
            n = try file.read(into: chunk)
        }
        delivered += n
        if realTime { waitUntilDue() }
        return stopped.load(ordering: .acquiring) ? 0 : n
    }

    /// Sleeps until the wall clock has caught up with the audio delivered so far.
    private func waitUntilDue() {
        let due = started + .seconds(Double(delivered) / Double(sampleRate) / speed)
        while ContinuousClock.now < due && !stopped.load(ordering: .relaxed) {
            Thread.sleep(forTimeInterval: min(0.05, ContinuousClock.now.duration(to: due) / .seconds(1)))
        }
    }
}
