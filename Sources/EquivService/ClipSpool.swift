import EquivAudio
import Foundation
import Synchronization

/// A folder of WAV clips of the windows the recognizer abstained on, for someone to listen to and
/// label later (docs/architecture.md §2's "uncertain" path), each with its inspect page beside it
/// (same name, .html). The folder never holds more than `quotaBytes`, pages included: after each
/// clip the oldest files are removed. Clip names sort by time.
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

    /// Writes `samples` as `<wall time>-<seq>.wav` and `page` beside it as `.html`; returns the
    /// WAV's path. Both or neither are left.
    func write(_ samples: [Float], sampleRate: Int, seq: Int, wallTime: Double, page: String) throws(AudioFileError) -> String {
        let stem = (directory as NSString).appendingPathComponent(String(format: "%015.3f-%08d", wallTime, seq))
        let (path, pagePath) = (stem + ".wav", stem + ".html")
        let bytes = 44 + 2 * samples.count + page.utf8.count
        guard bytes <= quotaBytes else {
            throw AudioFileError(path: path, kind: .writeFailed, reason: "a clip and its page of \(bytes) bytes exceed spool.quota_bytes")
        }
        try writeText(page, to: pagePath)
        do {
            try writeWAV(samples, sampleRate: sampleRate, to: path)
        } catch {
            unlink(pagePath)
            throw error
        }
        clipsWritten.add(1, ordering: .relaxed)
        enforceQuota()
        return path
    }

    /// `text` to `path` through `path.partial` and a rename, so a reader never sees half a page.
    private func writeText(_ text: String, to path: String) throws(AudioFileError) {
        let partial = path + ".partial"
        let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw AudioFileError(path: path, kind: .writeFailed, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        let why = String(cString: strerror(errno))
        guard close(fd) == 0, done == bytes.count, rename(partial, path) == 0 else {
            unlink(partial)
            throw AudioFileError(path: path, kind: .writeFailed, reason: "write failed after \(done) of \(bytes.count) bytes: \(why)")
        }
    }

    /// Removes the oldest clips until the folder is within the quota.
    private func enforceQuota() {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return }
        var clips = names.filter { $0.hasSuffix(".wav") || $0.hasSuffix(".html") }.sorted().map { name -> (String, Int) in
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
