import EquivCore
import EquivDSP
import EquivProtocol
import EquivView
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The optional HTTP listener (`[http] listen`): read-only views of the daemon for a line-side
/// screen and for health checks. Every route is a GET; none changes the daemon's state.
///
/// - `/`: the live page (`LivePage`);
/// - `/events`: the socket's events as server-sent events (`hello` first, then every event published);
/// - `/healthz`: 200 while capture and inference make progress (`HealthCheck`), else 503 and why;
/// - `/status`: the `status` event as JSON;
/// - `/metrics`: Prometheus metrics (`ServiceMetrics`);
/// - `/latest/received.png`, `/latest/canonicalized.png`: the latest decided window, one colour scale.
public final class HTTPServer: @unchecked Sendable {
    public struct Callbacks: Sendable {
        public var hello: @Sendable () -> String
        /// `status` as the socket's clients would get it (answered on the socket server's loop).
        public var status: @Sendable () -> EventLoopFuture<StatusEvent>
        public var health: @Sendable () -> HealthCheck.Verdict
        /// The Prometheus exposition, given `status`.
        public var metrics: @Sendable (StatusEvent) -> [UInt8]
    }

    /// An event-stream client that cannot take its events (a frozen browser tab) loses them
    /// rather than holding memory; the browser's EventSource reconnects if it is closed.
    static let streamHighWater = 256 * 1024

    public let address: SocketAddress
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let loop: EventLoop
    private var callbacks: Callbacks?
    private var channel: Channel?
    private let latest = Mutex<(values: [Float], shift: Int, bins: Int, frames: Int)?>(nil)
    private let accepting = Mutex(true)
    // Loop-confined.
    private var streams: [ObjectIdentifier: Channel] = [:]

    public init(host: String, port: Int) throws(ServerError) {
        do {
            address = try SocketAddress(ipAddress: host, port: port)
        } catch {
            throw ServerError(path: "\(host):\(port)", reason: "not an address: \(error)")
        }
        loop = group.next()
    }

    public func start(callbacks: Callbacks) throws(ServerError) {
        self.callbacks = callbacks
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: Self.streamHighWater))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(server: self))
                }
            }
        do {
            channel = try bootstrap.bind(to: address).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw ServerError(path: "\(address)", reason: "cannot listen: \(error)")
        }
    }

    /// The port bound (useful when the configuration asked for port 0).
    public var port: Int? { channel?.localAddress?.port }

    /// Sends `line` (one encoded event) to every event-stream client.
    public func publish(_ line: String) {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeString(line.hasSuffix("\n") ? String(line.dropLast()) : line)
        buffer.writeString("\n\n")
        let frame = buffer
        accepting.withLock { accepting in
            if accepting { loop.execute { [self] in for c in streams.values { send(frame, to: c) } } }
        }
    }

    /// Keeps the window `decision` was made on, for the two PNG routes.
    public func keep(window: AnalysedWindow, decision: Decision, parameters p: FrontEndParameters) {
        latest.withLock { $0 = (window.values, decision.shiftBins, p.binCount, p.windowFrames) }
    }

    public func stop() {
        accepting.withLock { $0 = false }
        let done = loop.submit { [self] in
            for c in streams.values { c.close(promise: nil) }
            streams = [:]
        }
        try? done.wait()
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }

    // MARK: On the loop

    fileprivate func route(_ head: HTTPRequestHead, on channel: Channel) {
        guard head.method == .GET || head.method == .HEAD else {
            return respond(channel, head, .methodNotAllowed, "text/plain", Array("only GET and HEAD\n".utf8), extra: [("Allow", "GET, HEAD")])
        }
        guard let callbacks else { return }
        let path = String(head.uri.prefix { $0 != "?" })
        switch path {
        case "/":
            respond(channel, head, .ok, "text/html; charset=utf-8", Array(LivePage.html.utf8))
        case "/healthz":
            let verdict = callbacks.health()
            respond(channel, head, verdict.healthy ? .ok : .serviceUnavailable, "text/plain; charset=utf-8", Array((verdict.reason + "\n").utf8))
        case "/metrics", "/status":
            callbacks.status().hop(to: channel.eventLoop).whenComplete { [self] result in
                switch result {
                case .success(let status) where path == "/metrics":
                    respond(channel, head, .ok, "text/plain; version=0.0.4; charset=utf-8", callbacks.metrics(status))
                case .success(let status):
                    respond(channel, head, .ok, "application/json", Array(EventProtocol.line(status).utf8))
                case .failure(let error):
                    respond(channel, head, .serviceUnavailable, "text/plain", Array("status unavailable: \(error)\n".utf8))
                }
            }
        case "/latest/received.png", "/latest/canonicalized.png":
            guard let png = latestPNG(canonicalized: path.hasSuffix("canonicalized.png")) else {
                return respond(channel, head, .notFound, "text/plain", Array("no window decided yet\n".utf8))
            }
            respond(channel, head, .ok, "image/png", png)
        case "/events" where head.method == .GET:
            var headers = HTTPHeaders(common)
            headers.add(name: "Content-Type", value: "text/event-stream")
            channel.write(HTTPServerResponsePart.head(.init(version: head.version, status: .ok, headers: headers)), promise: nil)
            streams[ObjectIdentifier(channel)] = channel
            channel.closeFuture.whenComplete { [self] _ in streams[ObjectIdentifier(channel)] = nil }
            var hello = ByteBuffer(string: "retry: 2000\n\n")
            hello.writeString("data: " + callbacks.hello().trimmingCharacters(in: .newlines) + "\n\n")
            send(hello, to: channel)
        default:
            respond(channel, head, .notFound, "text/plain", Array("no such page: \(path)\n".utf8))
        }
    }

    private func send(_ frame: ByteBuffer, to channel: Channel) {
        guard channel.isWritable else { return }  // lost for this client only
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(frame)), promise: nil)
    }

    /// Headers on every response: no caching, and a policy that lets the page run only its own
    /// inline script and load only from this listener.
    private let common: [(String, String)] = [
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:"),
        ("X-Content-Type-Options", "nosniff"),
    ]

    private func respond(
        _ channel: Channel, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ type: String, _ body: [UInt8],
        extra: [(String, String)] = []
    ) {
        var headers = HTTPHeaders(common + extra)
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.count)")
        channel.write(HTTPServerResponsePart.head(.init(version: request.version, status: status, headers: headers)), promise: nil)
        if request.method != .HEAD { channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
        if !request.isKeepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
    }

    private func latestPNG(canonicalized: Bool) -> [UInt8]? {
        guard let w = latest.withLock({ $0 }) else { return nil }
        let shifted = Inspection.canonicalized(w.values, bins: w.bins, frames: w.frames, shift: w.shift)
        let both = (w.values + shifted).filter(\.isFinite)
        let (lo, hi) = (both.min() ?? 0, both.max() ?? 1)
        return try? ColorMap.viridis.image(canonicalized ? shifted : w.values, rows: w.bins, columns: w.frames, lo: lo, hi: hi).png()
    }
}

private final class HTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: HTTPServer

    init(server: HTTPServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { server.route(head, on: context.channel) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// The watchdog's rule (`ProgressCheck`) as a verdict that remembers when: healthy while audio
/// was analysed, and inference kept up, within the last `stallSeconds`. `sample` is called once a
/// second (`HTTPService`), so a stall is seen however rarely anyone asks.
public final class HealthCheck: Sendable {
    public struct Verdict: Sendable {
        public let healthy: Bool
        public let reason: String
    }

    private let pipeline: Pipeline
    private let stallSeconds: Double
    private let state = Mutex<(samples: Int, decided: Int, audioAt: ContinuousClock.Instant, inferenceAt: ContinuousClock.Instant)>(
        (-1, -1, .now, .now))

    public init(pipeline: Pipeline, stallSeconds: Double) {
        self.pipeline = pipeline
        self.stallSeconds = stallSeconds
    }

    func sample() {
        let (samples, decided, queued) = (pipeline.samplesAnalysed, pipeline.decided, pipeline.queuedWindows)
        let now = ContinuousClock.now
        state.withLock { s in
            if samples > s.samples { (s.samples, s.audioAt) = (samples, now) }
            if decided > s.decided || queued == 0 { (s.decided, s.inferenceAt) = (decided, now) }
        }
    }

    public var verdict: Verdict {
        let now = ContinuousClock.now
        let s = state.withLock { $0 }
        let (audioIdle, inferenceIdle) = (s.audioAt.duration(to: now) / .seconds(1), s.inferenceAt.duration(to: now) / .seconds(1))
        if audioIdle > stallSeconds {
            let why = pipeline.sourceHealth.lastError.map { ": \($0)" } ?? ""
            return Verdict(healthy: false, reason: String(format: "no audio analysed for %.1f s from %@", audioIdle, pipeline.sourceName) + why)
        }
        if inferenceIdle > stallSeconds {
            return Verdict(healthy: false, reason: String(
                format: "inference stalled: %d windows queued, none decided for %.1f s", pipeline.queuedWindows, inferenceIdle))
        }
        return Verdict(healthy: true, reason: "ok")
    }
}
