import EquivProtocol
import Foundation
import TestSupport
import Testing

@testable import EquivService

/// The socket server against real clients on a real Unix socket in a temporary folder.
@Suite struct EventServerTests {
    let folder = TemporaryFolder()

    func makeServer(bufferEvents: Int = 16, dropLimit: Int = 100_000) throws -> EventServer {
        let server = EventServer(settings: .init(
            path: folder.file("s.sock"), mode: 0o660, group: nil, maxRequestBytes: 4096,
            clientBufferEvents: bufferEvents, dropLimit: dropLimit, maxClients: 64, sendBufferBytes: 4096, statusInterval: 3600))
        try server.start(callbacks: .init(
            hello: { EventProtocol.line(ErrorEvent(code: "hello", message: "")) },
            status: { StatusEvent() },
            reload: { reply in reply(EventProtocol.line(ReloadEvent(ok: true, message: "done"))) }))
        return server
    }

    @Test func socketHasTheConfiguredModeAndIsRemovedOnStop() throws {
        let server = try makeServer()
        var st = stat()
        #expect(lstat(folder.file("s.sock"), &st) == 0)
        #expect(st.st_mode & 0o777 == 0o660)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
        server.stop()
        #expect(lstat(folder.file("s.sock"), &st) != 0)
    }

    @Test func staleSocketIsReplacedButARegularFileIsNot() throws {
        try makeServer().stop()  // leaves nothing; make a stale socket by hand
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: folder.file("s.sock").utf8) }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        let server = try makeServer()  // the stale socket file is replaced
        server.stop()

        _ = FileManager.default.createFile(atPath: folder.file("s.sock"), contents: Data("keep me".utf8))
        #expect(throws: ServerError.self) { try makeServer() }
        #expect(FileManager.default.contents(atPath: folder.file("s.sock")) == Data("keep me".utf8))
    }

    @Test func healthyClientGetsEveryEventWhileAStalledOneLosesItsOldest() throws {
        let server = try makeServer(bufferEvents: 64)
        defer { server.stop() }
        let healthy = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        let stalled = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        // Both read their hello (the test's is an error event): both are registered before the first publish.
        #expect(try healthy.readLine().map { EventProtocol.type(of: $0) } == "error")
        #expect(try stalled.readLine().map { EventProtocol.type(of: $0) } == "error")
        let count = 1500
        let received = Received()
        nonisolated(unsafe) let healthyReader = healthy  // used only by the thread from here on
        let reader = Thread {
            while received.count < count, let line = try? healthyReader.readLine() {
                if let e = try? EventProtocol.decode(ErrorEvent.self, from: line), e.code == "n" { received.append(number(e)) }
            }
            received.finish()
        }
        reader.start()
        let padding = String(repeating: "x", count: 200)
        // Far faster than the service's 2 events a second; the reader may fall up to about 200 ms
        // behind (64 queued events plus the kernel's and NIO's buffers) without losing any.
        for i in 0..<count {
            server.publish(EventProtocol.line(ErrorEvent(code: "n", message: "\(i) \(padding)")))
            usleep(1000)
        }
        #expect(received.wait(seconds: 20))
        let inOrder = received.values.elementsEqual(0..<count)
        #expect(inOrder, "the healthy client got \(received.count) of \(count) events")

        // The stalled client: the kernel and NIO buffers hold a few kB, then 64 events; the rest dropped.
        let status = try server.clientStatistics()
        #expect(status.count == 2)
        #expect(status.filter { $0.dropped == 0 }.count == 1, "exactly one client (the healthy one) lost nothing")
        let stalledFigures = try #require(status.first { $0.dropped > 0 })
        #expect(stalledFigures.queued == 64)

        // Once it reads again it is told how many it lost, then gets the newest events in order.
        var seen: [Int] = []
        var told: Int?
        while seen.last != count - 1, let line = try stalled.readLine() {
            guard let e = try? EventProtocol.decode(ErrorEvent.self, from: line) else { continue }
            if e.code == "events_dropped" { told = e.dropped } else if e.code == "n" { seen.append(number(e)) }
        }
        #expect(told == stalledFigures.dropped)
        let ascending = seen == seen.sorted()
        #expect(ascending && seen.last == count - 1)
        #expect(seen.count + (told ?? 0) == count)
    }

    @Test func clientThatKeepsNotReadingIsDisconnected() throws {
        let server = try makeServer(bufferEvents: 4, dropLimit: 50)
        defer { server.stop() }
        let stalled = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        _ = try stalled.readLine()  // its hello: registered before the first publish
        let padding = String(repeating: "y", count: 2000)
        for i in 0..<500 { server.publish(EventProtocol.line(ErrorEvent(code: "n", message: "\(i) \(padding)"))) }
        // Runs on the loop after every publish above: by then the client has been dropped.
        #expect(try server.clientStatistics().isEmpty)
        var lines = 0
        while try stalled.readLine() != nil { lines += 1 }  // ends: the server closed the connection
        #expect(lines < 500)
    }

    @Test func badRequestsGetAnErrorAndTheConnectionStaysUsable() throws {
        let server = try makeServer()
        defer { server.stop() }
        let client = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        _ = try client.readLine()  // hello
        try client.send("{not json")
        try client.send(#"{"cmd":"shutdown"}"#)
        try client.send(#"{"cmd":"reload"}"#)
        var codes: [String] = []
        while codes.count < 3, let line = try client.readLine() {
            if let e = try? EventProtocol.decode(ErrorEvent.self, from: line) { codes.append(e.code) }
            if let r = try? EventProtocol.decode(ReloadEvent.self, from: line), r.type == "reload" { codes.append("reload ok \(r.ok)") }
        }
        #expect(codes == ["bad_request", "bad_request", "reload ok true"])
    }

    /// A line past `maxRequestBytes` is answered and the connection closed, so a hostile client
    /// costs the bound and not the length of its line; the other clients are served on.
    @Test func anOverlongRequestClosesThatConnectionOnly() throws {
        let server = try makeServer()
        defer { server.stop() }
        let other = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        let client = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        _ = try client.readLine()  // hello
        try client.send(String(repeating: "a", count: 10_000))
        var codes: [String] = []
        while let line = try client.readLine() {  // ends: the server closed the connection
            if let e = try? EventProtocol.decode(ErrorEvent.self, from: line) { codes.append(e.code) }
        }
        #expect(codes == ["request_too_long"])
        _ = try other.readLine()  // hello
        #expect(try other.request(Request(cmd: .status), replyTypes: ["status"]).contains(#""type":"status""#))
    }

    /// Past `maxClients`, a client gets `too_many_clients` and is closed; once one leaves, a new
    /// one is served.
    @Test func clientsPastTheLimitAreRefused() throws {
        let server = EventServer(settings: .init(
            path: folder.file("s.sock"), mode: 0o660, group: nil, maxRequestBytes: 4096,
            clientBufferEvents: 16, dropLimit: 100, maxClients: 2, sendBufferBytes: 4096, statusInterval: 3600))
        try server.start(callbacks: .init(hello: { EventProtocol.line(StatusEvent()) }, status: { StatusEvent() }, reload: { _ in }))
        defer { server.stop() }
        var served = [try EventConnection(path: folder.file("s.sock"), timeout: 10), try EventConnection(path: folder.file("s.sock"), timeout: 10)]
        for c in served { _ = try c.readLine() }
        let third = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        #expect(throws: ConnectionError.refused(path: folder.file("s.sock"), reason: "2 clients are connected, the most socket.max_clients allows")) {
            _ = try third.request(Request(cmd: .status), replyTypes: ["status"])
        }
        served.removeFirst()
        let status = try served[0].request(Request(cmd: .status), replyTypes: ["status"])
        #expect(try EventProtocol.decode(StatusEvent.self, from: status).clientsRefused == 1)
        let fourth = try EventConnection(path: folder.file("s.sock"), timeout: 10)
        #expect(try fourth.request(Request(cmd: .status), replyTypes: ["status"]).contains(#""type":"status""#))
    }
}

/// Integers received by a reader thread.
final class Received: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Int] = []
    private var done = false

    var count: Int { condition.withLock { items.count } }
    var values: [Int] { condition.withLock { items } }

    func append(_ x: Int) { condition.withLock { items.append(x) } }
    func finish() { condition.withLock { done = true; condition.broadcast() } }
    func wait(seconds: Double) -> Bool {
        condition.withLock {
            let deadline = Date(timeIntervalSinceNow: seconds)
            while !done { if !condition.wait(until: deadline) { return false } }
            return true
        }
    }
}

/// The sequence number at the start of a test event's message.
func number(_ e: ErrorEvent) -> Int { Int(e.message.prefix { $0 != " " })! }
