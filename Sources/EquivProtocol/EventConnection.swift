#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a connection to the daemon's socket failed or ended, in the terms a user acts on.
public enum ConnectionError: Error, Equatable, CustomStringConvertible {
    /// Nothing at the path, or a socket file nobody listens on: the daemon is not running.
    case notRunning(path: String, reason: String)
    /// The socket exists but this user may not open it (not in the socket's group).
    case permissionDenied(path: String)
    /// Any other failure of a socket call.
    case system(call: String, path: String, errno: Int32)
    /// The daemon did not answer in time.
    case timedOut(path: String)
    /// The daemon turned this connection away (`too_many_clients`).
    case refused(path: String, reason: String)

    public var description: String {
        switch self {
        case .notRunning(let path, let reason): "\(path): equivd is not running (\(reason))"
        case .permissionDenied(let path): "\(path): permission denied (is this user in the socket's group?)"
        case .system(let call, let path, let code): "\(path): \(call) failed: \(String(cString: strerror(code)))"
        case .timedOut(let path): "\(path): no answer from equivd"
        case .refused(let path, let reason): "\(path): equivd refused the connection: \(reason)"
        }
    }
}

/// A blocking client connection to the event socket: read lines, send requests.
/// equivctl is one thread reading one stream, so plain blocking calls are the simple fit.
public final class EventConnection {
    public let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0

    /// Connects to `path`; `timeout` (seconds, 0 = none) bounds each later read.
    public init(path: String, timeout: Double = 0) throws(ConnectionError) {
        self.path = path
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw .system(call: "socket", path: path, errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            close(fd)
            throw .system(call: "connect", path: path, errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let code = errno
            close(fd)
            switch code {
            case ENOENT: throw .notRunning(path: path, reason: "no socket file")
            case ECONNREFUSED: throw .notRunning(path: path, reason: "nobody listening")
            case EACCES, EPERM: throw .permissionDenied(path: path)
            default: throw .system(call: "connect", path: path, errno: code)
            }
        }
        if timeout > 0 {
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The next line without its `\n`, or nil when the daemon closed the connection.
    public func readLine() throws(ConnectionError) -> Substring? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Substring(decoding: buffer[start..<newline], as: UTF8.self)
                start = newline + 1
                return line
            }
            if start > 0 {
                buffer.removeSubrange(0..<start)
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw .timedOut(path: path) }
                if errno == ECONNRESET { return nil }  // closed by the daemon with our request unread
                throw .system(call: "read", path: path, errno: errno)
            }
            if n == 0 { return nil }
            buffer += chunk[0..<n]
        }
    }

    /// Sends `line` and a `\n`.
    public func send(_ line: String) throws(ConnectionError) {
        let bytes = Array((line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            // MSG_NOSIGNAL: a daemon that closed the connection is an error to report, not SIGPIPE.
            #if canImport(Glibc)
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            #else
            let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            #endif
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(call: "write", path: path, errno: errno)
            }
            sent += n
        }
    }

    /// Sends `request` and returns the first line of the reply whose type is one of `types`,
    /// skipping the events the daemon streams meanwhile.
    public func request(_ request: Request, replyTypes types: Set<String>) throws(ConnectionError) -> Substring {
        do {
            try send(EventProtocol.line(request).dropLast().description)
        } catch {
            // Refused at once (`too_many_clients`)? Then its reason is waiting to be read.
            while let line = try? readLine() { try Self.refusal(line, path: path) }
            throw error
        }
        while let line = try readLine() {
            guard let type = EventProtocol.type(of: line) else { continue }
            if types.contains(type) { return line }
            try Self.refusal(line, path: path)
        }
        throw .notRunning(path: path, reason: "connection closed before the reply")
    }

    /// Throws `.refused` if `line` is the daemon turning this connection away.
    private static func refusal(_ line: Substring, path: String) throws(ConnectionError) {
        guard EventProtocol.type(of: line) == "error", let error = try? EventProtocol.decode(ErrorEvent.self, from: line),
              error.code == "too_many_clients" else { return }
        throw .refused(path: path, reason: error.message)
    }
}
