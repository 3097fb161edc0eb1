import EquivAudio
import Foundation
import Synchronization

/// A folder of WAV clips of the windows the recognizer abstained on, for someone to listen to and
/// label later (docs/architecture.md §2's "uncertain" path). The folder never holds more than `quotaBytes`:
/// after each clip the oldest are removed. Clip names sort by time.
final class ClipSpool: Sendable {
    let directory: String
    let quotaBytes: Int
    private let clipsWritten = Atomic<Int>(0)

    /// Clips written since start.
    var written: Int { clipsWritten.load(ordering: .relaxed) }

    init(directory: String, quotaBytes: Int) throws(ConfigurationError) {
        self.directory = directory
        self.quotaBytes = quotaBytes
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ConfigurationError(file: directory, key: "spool.directory", line: nil, reason: "cannot create: \(error.localizedDescription)")
        }
    }

    /// Writes `samples` as `<wall time>-<seq>.wav` and returns its path.
    func write(_ samples: [Float], sampleRate: Int, seq: Int, wallTime: Double) throws(AudioFileError) -> String {
        let bytes = 44 + 2 * samples.count
        let name = String(format: "%015.3f-%08d.wav", wallTime, seq)
        let path = (directory as NSString).appendingPathComponent(name)
        guard bytes <= quotaBytes else {
            throw AudioFileError(path: path, kind: .writeFailed, reason: "a clip of \(bytes) bytes exceeds spool.quota_bytes")
        }
        try writeWAV(samples, sampleRate: sampleRate, to: path)
        clipsWritten.add(1, ordering: .relaxed)
        enforceQuota()
        return path
    }

    /// Removes the oldest clips until the folder is within the quota.
    private func enforceQuota() {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return }
        var clips = names.filter { $0.hasSuffix(".wav") }.sorted().map { name -> (String, Int) in
            let path = (directory as NSString).appendingPathComponent(name)
            let size = (try? fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            return (path, size)
        }
        var total = clips.reduce(0) { $0 + $1.1 }
        while total > quotaBytes, !clips.isEmpty {
            let (path, size) = clips.removeFirst()
            unlink(path)
            total -= size
        }
    }
}
