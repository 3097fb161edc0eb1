import Foundation

/// The MQTT publisher's store and forward: one file per message in a folder under the state
/// directory, named by a number that only grows, written to a `.partial` name and renamed, and
/// removed once the broker has acknowledged it. So a message is either whole on disk or not
/// there, a restart (even after kill -9) finds every message not yet acknowledged, and they go
/// out in the order they were made. Past `quotaBytes` the oldest are removed and counted.
///
/// Not thread-safe: the publisher uses it from its own queue only.
final class MQTTQueue {
    struct Item: Equatable {
        let number: UInt64
        let bytes: Int
    }

    let directory: String
    let quotaBytes: Int
    /// Oldest first.
    private(set) var items: [Item] = []
    private(set) var totalBytes = 0
    private(set) var dropped = 0
    private var next: UInt64 = 0

    init(directory: String, quotaBytes: Int) throws(ConfigurationError) {
        (self.directory, self.quotaBytes) = (directory, quotaBytes)
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: directory) {
                let path = (directory as NSString).appendingPathComponent(name)
                if name.hasSuffix(".partial") {
                    unlink(path)  // a write cut short by a crash: it was never queued
                } else if name.hasSuffix(".msg"), let number = UInt64(name.dropLast(4)) {
                    let size = (try fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                    items.append(Item(number: number, bytes: size))
                }
            }
        } catch {
            throw ConfigurationError(file: directory, key: "mqtt.queue_directory", line: nil, reason: "cannot use: \(error.localizedDescription)")
        }
        items.sort { $0.number < $1.number }
        totalBytes = items.reduce(0) { $0 + $1.bytes }
        next = (items.last?.number ?? 0) + 1
    }

    /// Queues `payload` for `topic`; false when the write failed (the disk is full, say).
    func append(topic: String, payload: String) -> Bool {
        let data = Array((topic + "\n" + payload).utf8)
        let number = next
        next += 1
        let path = self.path(number)
        let partial = path + ".partial"
        let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        var done = 0
        while done < data.count {
            let n = data[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        guard close(fd) == 0, done == data.count, rename(partial, path) == 0 else {
            unlink(partial)
            return false
        }
        items.append(Item(number: number, bytes: data.count))
        totalBytes += data.count
        while totalBytes > quotaBytes, let oldest = items.first {
            remove(oldest)
            dropped += 1
        }
        return true
    }

    /// The topic and payload of a queued message.
    func read(_ item: Item) -> (topic: String, payload: [UInt8])? {
        guard let data = FileManager.default.contents(atPath: path(item.number)), let newline = data.firstIndex(of: 10) else { return nil }
        return (String(decoding: data[..<newline], as: UTF8.self), Array(data[(newline + 1)...]))
    }

    func contains(_ item: Item) -> Bool { items.contains(item) }

    func remove(_ item: Item) {
        guard let i = items.firstIndex(of: item) else { return }
        items.remove(at: i)
        totalBytes -= item.bytes
        unlink(path(item.number))
    }

    private func path(_ number: UInt64) -> String {
        (directory as NSString).appendingPathComponent(String(format: "%020llu.msg", number))
    }
}
