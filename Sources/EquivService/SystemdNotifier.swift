import Foundation

/// The sd_notify protocol spoken directly: one datagram per message to the AF_UNIX socket named in
/// `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`). Without that
/// variable every call does nothing, so the daemon runs the same outside systemd.
public final class SystemdNotifier: @unchecked Sendable {
    private let fd: Int32
    /// Read-only after init: `notify` is called from several threads at once.
    private let address: sockaddr_un
    private let addressLength: socklen_t
    /// systemd's `WatchdogSec=` for this process, from `$WATCHDOG_USEC` (and `$WATCHDOG_PID`).
    public let watchdogInterval: Double?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0,
           environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == getpid() }) ?? true {
            watchdogInterval = usec / 1e6
        } else {
            watchdogInterval = nil
        }
        var address = sockaddr_un()
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty,
              path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else {
            (fd, self.address, addressLength) = (-1, address, 0)
            return
        }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        self.address = address
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
    }

    deinit { if fd >= 0 { close(fd) } }

    public var isActive: Bool { fd >= 0 }

    /// Sends newline-separated `KEY=VALUE` assignments, e.g. `"READY=1\nSTATUS=serving"`.
    /// Failures are ignored, as sd_notify's callers do: systemd may not be listening.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard fd >= 0 else { return false }
        let sent = Array(state.utf8).withUnsafeBytes { bytes in
            withUnsafePointer(to: address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, addressLength)
                }
            }
        }
        return sent == state.utf8.count
    }
}
