import EquivProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Why the socket could not be served, naming the path or the config key involved.
public struct ServerError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// The Unix-socket side of docs/architecture.md §5: JSON-lines events out to every client, one-line
/// requests in.
///
/// Everything about clients lives on one event loop. Each client has a bounded queue of events
/// that the kernel and NIO's own buffer could not take yet: when it is full the oldest event is
/// dropped and counted, the client is told how many it lost once it reads again, and a client
/// that loses `dropLimit` events in a row is disconnected. A slow or hostile client therefore
/// costs the others nothing. At most `maxClients` are served at once, so clients never take the
/// descriptors the rest of the daemon needs; a request line past `maxRequestBytes` is answered
/// `request_too_long` and the connection closed without reading on.
public final class EventServer: @unchecked Sendable {
    public struct Settings: Sendable {
        public var path: String
        public var mode: mode_t
        /// Group to give the socket; nil keeps the daemon's own.
        public var group: gid_t?
        public var maxRequestBytes: Int
        public var clientBufferEvents: Int
        public var dropLimit: Int
        public var maxClients: Int
        public var sendBufferBytes: Int
        public var statusInterval: Double
    }

    /// What the server asks of the daemon; each is called on the event loop.
    public struct Callbacks: Sendable {
        /// The `hello` line for a new client.
        public var hello: @Sendable () -> String
        /// The daemon's figures for `status`; the server fills in its own, the clients'.
        public var status: @Sendable () -> StatusEvent
        /// Runs a reload and passes the reply line to `reply` (from any thread).
        public var reload: @Sendable (_ reply: @escaping @Sendable (String) -> Void) -> Void

        public init(
            hello: @escaping @Sendable () -> String,
            status: @escaping @Sendable () -> StatusEvent,
            reload: @escaping @Sendable (@escaping @Sendable (String) -> Void) -> Void
        ) {
            self.hello = hello
            self.status = status
            self.reload = reload
        }
    }

    let settings: Settings
    private var callbacks = Callbacks(hello: { "" }, status: { StatusEvent() }, reload: { _ in })  // set by `start`
    private let group: MultiThreadedEventLoopGroup
    fileprivate let loop: EventLoop
    /// False once `stop()` has shut the loop down.
    private let accepting = Mutex(true)
    private var serverChannel: Channel?
    /// Held while serving, so a second daemon on the same socket refuses to start.
    private var lock: SocketLock?
    // Loop-confined.
    private var clients: [ObjectIdentifier: ClientHandler] = [:]
    private var nextClientID = 1
    private var disconnected = 0
    private var refused = 0
    private var statusTask: RepeatedTask?
    private var socketWatch: RepeatedTask?

    private let logger = DaemonLog.logger

    public init(settings: Settings) {
        self.settings = settings
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
    }

    /// Binds the socket (replacing a stale one only if it is a socket), sets its mode and group,
    /// and starts the periodic status; from then on `callbacks` answer the clients.
    public func start(callbacks: Callbacks) throws(ServerError) {
        self.callbacks = callbacks
        let path = settings.path
        let lock = try SocketLock(socketPath: path)
        var st = stat()
        if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFSOCK {
            throw ServerError(path: path, reason: "exists and is not a socket; refusing to remove it")
        }
        do {
            serverChannel = try listen().wait()
        } catch let error as ServerError {
            throw error
        } catch {
            throw ServerError(path: path, reason: "cannot listen: \(error)")
        }
        self.lock = lock
        let interval = TimeAmount.nanoseconds(Int64(settings.statusInterval * 1e9))
        statusTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            broadcastOnLoop(ByteBuffer(string: statusLine()))
        }
        socketWatch = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            relistenIfRemoved()
        }
    }

    /// Binds the socket file and gives it the configured mode and group.
    private func listen() -> EventLoopFuture<Channel> {
        let path = settings.path
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 8 * 1024, high: 32 * 1024))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ClientHandler(server: self, id: nextClientID)
                    nextClientID += 1
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let configured = settings.sendBufferBytes > 0
            ? bootstrap.childChannelOption(.socketOption(.so_sndbuf), value: .init(settings.sendBufferBytes))
            : bootstrap
        return configured.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).flatMapThrowing { [settings] channel in
            if chmod(path, settings.mode) != 0 {
                channel.close(promise: nil)
                throw ServerError(path: path, reason: "chmod failed: \(String(cString: strerror(errno)))")
            }
            if let gid = settings.group, chown(path, uid_t.max, gid) != 0 {
                channel.close(promise: nil)
                throw ServerError(path: path, reason: "chown to group \(gid) failed: \(String(cString: strerror(errno)))")
            }
            return channel
        }
    }

    /// Someone removed the socket file (or its folder, e.g. a tmpfiles clean-up): connected
    /// clients are unaffected, but nobody new could connect. Recreate both and listen again.
    private func relistenIfRemoved() {
        var st = stat()
        guard lstat(settings.path, &st) != 0, errno == ENOENT else { return }
        let folder = (settings.path as NSString).deletingLastPathComponent
        if !folder.isEmpty { mkdir(folder, 0o750) }
        // If the folder went, the lock file went with it: take a new one before listening again.
        if access(settings.path + ".lock", F_OK) != 0 {
            do {
                lock = try SocketLock(socketPath: settings.path)
            } catch {
                logger.error("\(error); not listening again")
                return
            }
        }
        // Close the old listener first: NIO unlinks its path on close, which would take the new file.
        let closed = serverChannel?.close() ?? loop.makeSucceededVoidFuture()
        serverChannel = nil
        closed.recover { _ in }.flatMap { [self] in listen() }.whenComplete { [self] result in
            switch result {
            case .success(let channel):
                serverChannel = channel
                logger.warning("\(settings.path) was removed; listening again")
            case .failure(let error):  // tried again next second
                logger.error("cannot recreate \(settings.path): \(error)")
            }
        }
    }

    /// Sends `line` (one encoded event) to every client. Callable from any thread; after `stop()`
    /// it does nothing (a decision that finishes during shutdown has nowhere to go).
    public func publish(_ line: String) {
        let buffer = ByteBuffer(string: line)
        accepting.withLock { accepting in
            if accepting { loop.execute { [self] in broadcastOnLoop(buffer) } }
        }
    }

    /// Gives each client what it can still take within about half a second, closes every
    /// connection, stops listening and removes the socket file.
    public func stop() {
        let done = loop.submit { [self] () -> EventLoopFuture<Void> in
            statusTask?.cancel()
            socketWatch?.cancel()
            let closes = clients.values.map { $0.finish() }
            return EventLoopFuture.andAllComplete(closes, on: loop)
                .flatMap { [self] in serverChannel?.close() ?? loop.makeSucceededVoidFuture() }
        }.flatMap { $0 }
        try? done.wait()
        unlink(settings.path)
        lock = nil
        accepting.withLock { $0 = false }
        try? group.syncShutdownGracefully()
    }

    /// The clients' figures as `status` reports them. Not callable from the loop itself.
    func clientStatistics() throws -> [StatusEvent.Client] {
        try loop.submit { [self] in clientFigures() }.wait()
    }

    /// `status` as a client would get it now, its figures included.
    public func status() -> EventLoopFuture<StatusEvent> {
        loop.submit { [self] in statusOnLoop() }
    }

    // MARK: On the loop

    /// Serves `client`, or refuses it when `maxClients` are connected.
    fileprivate func added(_ client: ClientHandler) {
        guard clients.count < settings.maxClients else {
            refused += 1
            // Once per hundred: a flood of connections must not flood the journal.
            if refused % 100 == 1 {
                logger.warning("client \(client.id) refused: \(settings.maxClients) clients connected (socket.max_clients); \(refused) refused so far")
            }
            client.close(with: ErrorEvent(
                code: "too_many_clients", message: "\(settings.maxClients) clients are connected, the most socket.max_clients allows"))
            return
        }
        clients[ObjectIdentifier(client)] = client
        client.enqueue(ByteBuffer(string: callbacks.hello()))
    }

    fileprivate func removed(_ client: ClientHandler, forDropping: Bool) {
        if clients.removeValue(forKey: ObjectIdentifier(client)) != nil && forDropping {
            disconnected += 1
            logger.warning("client \(client.id) disconnected: it lost \(settings.dropLimit) events in a row without reading")
        }
    }

    fileprivate func handle(_ request: Request, from client: ClientHandler) {
        switch request.cmd {
        case .status:
            client.enqueue(ByteBuffer(string: statusLine()))
        case .reload:
            let loop = self.loop
            let target = NIOLoopBound(client, eventLoop: loop)
            client.peerCredentials().whenComplete { [self] result in
                guard case .success(let peer) = result, mayReload(peer) else {
                    let who = (try? result.get()).map { "uid \($0.uid), gid \($0.gid)" } ?? "an unknown peer"
                    target.value.enqueue(ByteBuffer(string: EventProtocol.line(ErrorEvent(
                        code: "permission_denied", message: "reload is for root and the socket's group; not \(who)"))))
                    return
                }
                callbacks.reload { line in
                    loop.execute { target.value.enqueue(ByteBuffer(string: line)) }
                }
            }
        }
    }

    /// Root, the daemon's own user, and members of the socket's group (primary or listed in
    /// /etc/group) may reload; anyone else who can open the socket may only watch.
    private func mayReload(_ peer: PeerCredentials) -> Bool {
        let group = settings.group ?? getegid()
        if peer.uid == 0 || peer.uid == geteuid() || peer.gid == group { return true }
        guard let account = getpwuid(peer.uid) else { return false }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        guard getgrouplist(account.pointee.pw_name, peer.gid, &groups, &count) >= 0 else { return false }
        return groups.prefix(Int(count)).contains(group)
    }

    private func broadcastOnLoop(_ buffer: ByteBuffer) {
        for client in clients.values { client.enqueue(buffer) }
    }

    private func statusLine() -> String { EventProtocol.line(statusOnLoop()) }

    private func statusOnLoop() -> StatusEvent {
        var status = callbacks.status()
        status.clients = clientFigures()
        status.clientsDisconnected = disconnected
        status.clientsRefused = refused
        return status
    }

    private func clientFigures() -> [StatusEvent.Client] {
        clients.values.map { StatusEvent.Client(id: $0.id, queued: $0.queued, dropped: $0.dropped) }.sorted { $0.id < $1.id }
    }
}

/// One connected client: frames its requests and buffers its events (on the server's loop).
private final class ClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let id: Int
    private let server: EventServer
    private var context: ChannelHandlerContext?
    private var pending = CircularBuffer<ByteBuffer>()
    private var requests: RequestReader
    private(set) var dropped = 0
    private var droppedUntold = 0
    private var droppedInRow = 0
    private var closing = false

    init(server: EventServer, id: Int) {
        self.server = server
        self.id = id
        requests = RequestReader(limit: server.settings.maxRequestBytes)
    }

    var queued: Int { pending.count }

    /// The connected process's uid and gid, from the kernel (SO_PEERCRED): a client cannot lie.
    func peerCredentials() -> EventLoopFuture<PeerCredentials> {
        guard let channel = context?.channel, let provider = channel as? SocketOptionProvider else {
            return server.loop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        server.added(self)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.removed(self, forDropping: false)
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        flushPending()
        context.fireChannelWritabilityChanged()
    }

    /// Queues `buffer` for this client, dropping its oldest queued event when the queue is full.
    func enqueue(_ buffer: ByteBuffer) {
        guard let context, !closing else { return }
        if pending.isEmpty && context.channel.isWritable {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            return
        }
        if pending.count >= server.settings.clientBufferEvents {
            pending.removeFirst()
            dropped += 1
            droppedUntold += 1
            droppedInRow += 1
            if droppedInRow >= server.settings.dropLimit {
                server.removed(self, forDropping: true)
                closing = true
                context.close(promise: nil)
                return
            }
        }
        pending.append(buffer)
    }

    private func flushPending() {
        guard let context, !pending.isEmpty || droppedUntold > 0 else { return }
        if droppedUntold > 0 && context.channel.isWritable {
            let notice = ErrorEvent(
                code: "events_dropped", message: "you were not reading; the oldest events were dropped",
                dropped: droppedUntold)
            context.write(wrapOutboundOut(ByteBuffer(string: EventProtocol.line(notice))), promise: nil)
            droppedUntold = 0
        }
        while context.channel.isWritable, let next = pending.popFirst() {
            context.write(wrapOutboundOut(next), promise: nil)
        }
        if pending.isEmpty { droppedInRow = 0 }
        context.flush()
    }

    /// Writes what the client can take, then closes within half a second even if it cannot.
    func finish() -> EventLoopFuture<Void> {
        guard let context else { return server.loop.makeSucceededVoidFuture() }
        closing = true
        while let next = pending.popFirst() { context.write(wrapOutboundOut(next), promise: nil) }
        let channel = context.channel
        let flushed = context.writeAndFlush(wrapOutboundOut(ByteBuffer()))
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(500)) { channel.close(promise: nil) }
        return flushed.flatMap { channel.close() }.always { _ in deadline.cancel() }
            .flatMapErrorThrowing { _ in }
    }

    /// Sends `error` after what is queued, then closes: a refused or misbehaving client.
    func close(with error: ErrorEvent) {
        guard let context, !closing else { return }
        closing = true
        while let next = pending.popFirst() { context.write(wrapOutboundOut(next), promise: nil) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: EventProtocol.line(error)))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let incoming = unwrapInboundIn(data)
        for item in requests.feed(incoming.readableBytesView) {
            switch item {
            case .request(let request): server.handle(request, from: self)
            case .error(let code, let message) where code == "request_too_long":
                // Reading a hostile line to its end costs time for nothing: close now.
                close(with: ErrorEvent(code: code, message: message))
                return
            case .error(let code, let message): enqueue(ByteBuffer(string: EventProtocol.line(ErrorEvent(code: code, message: message))))
            }
        }
    }
}

/// glibc's `struct ucred` (what SO_PEERCRED returns), which the Glibc module hides without
/// _GNU_SOURCE: three 32-bit fields in this order.
struct PeerCredentials: Sendable {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}

/// One daemon per socket: an exclusive `flock` on `<socket>.lock`, which holds the owner's pid.
/// The lock goes with the process, however it ends, so a stale file never blocks a restart.
final class SocketLock {
    private let fd: Int32

    init(socketPath: String) throws(ServerError) {
        let path = socketPath + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ServerError(path: path, reason: "cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw ServerError(
                path: socketPath, reason: "another equivd (pid \(holder.isEmpty ? "unknown" : holder)) serves this socket")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit { close(fd) }
}
