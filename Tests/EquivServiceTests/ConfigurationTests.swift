import Foundation
import TestSupport
import Testing

@testable import EquivService

@Suite struct ConfigurationTests {
    /// Config/equivd.toml, the documented defaults.
    static let shipped = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Config/equivd.toml").path

    @Test func shippedFileIsAllDefaults() throws {
        #expect(try ServiceConfiguration(file: Self.shipped) == ServiceConfiguration())
    }

    /// Uncommenting every `# key = value` line of the shipped file must give the defaults again:
    /// the comments state the real defaults, and every key the file names exists.
    @Test func everyDocumentedDefaultIsTheRealOne() throws {
        let text = try String(contentsOfFile: Self.shipped, encoding: .utf8)
        var keys = 0
        let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("# "), line.contains(" = "), !line.contains("= …") else { return String(line) }
            keys += 1
            let assignment = line.dropFirst(2)
            // Drop the trailing comment, outside any string.
            var inString = false
            var end = assignment.endIndex
            for i in assignment.indices {
                if assignment[i] == "\"" { inString.toggle() }
                if assignment[i] == "#" && !inString { end = i; break }
            }
            return String(assignment[..<end])
        }.joined(separator: "\n")
        #expect(keys == 49)
        #expect(try ServiceConfiguration(toml: uncommented, file: "uncommented") == ServiceConfiguration())
    }

    @Test func loopbackListenersNeedNoPermission() throws {
        for listen in ["127.0.0.1:9730", "127.3.2.1:1", "[::1]:9730", "localhost:0"] {
            #expect(try ServiceConfiguration(toml: "[http]\nlisten = \"\(listen)\"\n", file: "t.toml").httpAddress?.isLoopback == true)
        }
        let open = try ServiceConfiguration(toml: "[http]\nlisten = \"0.0.0.0:9730\"\nallow_non_loopback = true\n", file: "t.toml")
        #expect(open.httpAddress?.host == "0.0.0.0" && open.httpAddress?.port == 9730)
    }

    @Test func valuesAreRead() throws {
        let c = try ServiceConfiguration(toml: """
            [source]
            kind = "file"
            file = "a.wav"
            pace = "fast"
            [model]
            top_k = 5
            classifier_min_p = 0.5
            [socket]
            path = "/tmp/x.sock"
            mode = "0600"
            status_interval = 2
            """, file: "t.toml")
        #expect(c.source.kind == .file && c.source.file == "a.wav" && c.source.pace == .fast)
        #expect(c.model.topK == 5 && c.model.classifierMinP == 0.5 && c.model.canonicalizerMinP == nil)
        #expect(c.socket.path == "/tmp/x.sock" && c.socketMode == 0o600 && c.socket.statusInterval == 2)
    }

    @Test(arguments: [
        ("[socket]\npath = \"/x\"\npaht = \"/y\"\n", "t.toml:3: socket.paht: unknown key"),
        ("[source]\n\n  channels = \"two\"\n", "t.toml:3: source.channels: expected an integer, got string"),
        ("[model]\nmode = \"fast\"\n", "t.toml:2: model.mode: must be one of vanilla, canon, topk, groupavg, partial, got \"fast\""),
        ("[source]\npace = \"slow\"\n", "t.toml:2: source.pace: must be one of realtime, fast, got \"slow\""),
        ("[sockets]\npath = \"/x\"\n", "t.toml:1: sockets: unknown section"),
        ("[source]\nkind = \"alsa\"\n[model]\nsource = 1\n", "t.toml:4: model.source: unknown key"),
        ("[socket]\nmode = \"0999\"\n", "t.toml: socket.mode: must be an octal mode such as \"0660\", got \"0999\""),
        ("[http]\nlisten = \"plant-pc:80\"\n",
         "t.toml: http.listen: must be host:port with a numeric address, e.g. \"127.0.0.1:9730\" or \"[::1]:9730\", got \"plant-pc:80\""),
        ("[http]\nlisten = \"0.0.0.0:9730\"\n",
         "t.toml: http.listen: 0.0.0.0:9730 is not a loopback address; set http.allow_non_loopback = true to serve other hosts"),
        ("[log]\nlevel = \"loud\"\n", "t.toml:2: log.level: must be one of trace, debug, info, notice, warning, error, critical, got \"loud\""),
        ("[socket]\nmax_clients = 0\n", "t.toml: socket.max_clients: must be in 1...100000"),
        ("[http]\nlisten = \"[::]:9730\"\n",
         "t.toml: http.listen: [::]:9730 is not a loopback address; set http.allow_non_loopback = true to serve other hosts"),
    ])
    func badKeysAndValuesAreNamed(text: String, message: String) {
        #expect(throws: ConfigurationError.self) { try ServiceConfiguration(toml: text, file: "t.toml") }
        do {
            _ = try ServiceConfiguration(toml: text, file: "t.toml")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func syntaxErrorsGiveTheParsersLine() {
        do {
            _ = try ServiceConfiguration(toml: "[source]\ndevice = \"hw:0\"\nchannels = = 2\n", file: "t.toml")
            Issue.record("a syntax error was accepted")
        } catch {
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("t.toml:3: "))
        }
    }
}

@Suite struct BoundedQueueTests {
    @Test func fullQueueDropsItsOldestAndCounts() {
        let q = BoundedQueue<Int>(capacity: 3, overflow: .dropOldest)
        for i in 0..<5 { q.push(i) }
        #expect(q.dropped == 2)
        #expect([q.pop(), q.pop(), q.pop(), q.pop()] == [2, 3, 4, nil])
    }

    @Test func waitingQueueBlocksTheProducerUntilThereIsRoom() {
        let q = BoundedQueue<Int>(capacity: 2, overflow: .wait)
        q.push(0)
        q.push(1)
        let pushed = DispatchSemaphore(value: 0)
        Thread { q.push(2); pushed.signal() }.start()
        #expect(pushed.wait(timeout: .now() + 0.2) == .timedOut, "push into a full .wait queue must block")
        #expect(q.pop() == 0)
        #expect(pushed.wait(timeout: .now() + 2) == .success)
        #expect([q.pop(), q.pop()] == [1, 2])
        #expect(q.dropped == 0)
    }

    @Test func closingReleasesABlockedProducer() {
        let q = BoundedQueue<Int>(capacity: 1, overflow: .wait)
        q.push(0)
        let result = Received()
        Thread { result.append(q.push(1) ? 1 : 0); result.finish() }.start()
        usleep(50_000)
        q.close()
        #expect(result.wait(seconds: 2) && result.values == [0])
    }

    @Test func historyKeepsTheNewestSamples() {
        let h = AudioHistory(capacity: 4)
        [Float(0), 1, 2].withUnsafeBufferPointer { h.append($0) }
        #expect(h.copy(0..<3) == [0, 1, 2])
        Array((3..<10).map(Float.init)).withUnsafeBufferPointer { h.append($0) }
        #expect(h.copy(6..<10) == [6, 7, 8, 9])
        #expect(h.copy(5..<7) == nil)
        #expect(h.copy(9..<11) == nil)
    }

    /// Grown by a reload (a longer clip context): what was kept stays readable, nothing older
    /// reads as silence, and the new room fills from then on.
    @Test func historyGrowsWithoutInventingAudio() {
        let h = AudioHistory(capacity: 4)
        Array((0..<10).map(Float.init)).withUnsafeBufferPointer { h.append($0) }
        h.reserve(8)
        #expect(h.oldest == 6 && h.copy(6..<10) == [6, 7, 8, 9])
        #expect(h.copy(4..<10) == nil, "samples overwritten before the growth are not kept")
        Array((10..<12).map(Float.init)).withUnsafeBufferPointer { h.append($0) }
        #expect(h.oldest == 6 && h.copy(6..<12) == [6, 7, 8, 9, 10, 11])
        Array((12..<20).map(Float.init)).withUnsafeBufferPointer { h.append($0) }
        #expect(h.oldest == 12 && h.copy(12..<20) == (12..<20).map(Float.init))
    }
}

@Suite struct SystemdNotifierTests {
    /// A datagram socket of the test's own stands in for systemd's.
    @Test(arguments: [false, true])
    func messagesArriveOnTheNotifySocket(abstract: Bool) throws {
        let folder = TemporaryFolder()
        let name = abstract ? "equivd-test-\(UUID().uuidString.prefix(8))" : folder.file("notify")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = abstract ? [0] + Array(name.utf8) : Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        #expect(bound == 0)

        let notifier = SystemdNotifier(environment: [
            "NOTIFY_SOCKET": abstract ? "@" + name : name, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "\(getpid())",
        ])
        #expect(notifier.watchdogInterval == 4)
        #expect(notifier.notify("READY=1\nSTATUS=serving"))
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer[0..<max(n, 0)], as: UTF8.self) == "READY=1\nSTATUS=serving")
    }

    @Test func withoutSystemdNothingIsSent() {
        let notifier = SystemdNotifier(environment: ["WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"])
        #expect(!notifier.isActive)
        #expect(!notifier.notify("READY=1"))
        #expect(notifier.watchdogInterval == nil, "a watchdog meant for another process is not ours")
    }
}

@Suite struct ProgressCheckTests {
    @Test func healthyWhileAudioMovesAndInferenceKeepsUp() {
        var check = ProgressCheck()
        let looks = [
            (1600, 0, 0, true),  // audio, nothing waiting
            (3200, 2, 1, true),  // audio, windows decided
            (3200, 3, 0, false),  // capture or DSP stuck: no new audio
            (4800, 3, 5, false),  // inference stuck: windows wait, none decided
            (6400, 3, 8, false),  // still stuck
            (8000, 4, 8, true),  // inference moving again
        ]
        for (samples, decided, queued, healthy) in looks {
            let verdict = check.advanced(samples: samples, decided: decided, queued: queued)
            #expect(verdict == healthy, "samples \(samples), decided \(decided), queued \(queued)")
        }
    }
}
