import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A NOTIFY_SOCKET for tests: binds a datagram socket and records every
/// sd_notify message with the time it arrived.
public final class NotifyListener: Sendable {
    public let path: String
    private let fd: Int32
    private let messages = Mutex<[(ContinuousClock.Instant, String)]>([])
    private let stopped = Mutex(false)
    /// While true nothing is read: the socket's queue fills and senders block.
    private let paused = Mutex(false)

    public init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8)).sock").path
        let sock = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        fd = sock
        guard sock >= 0 else { throw TimeoutError(description: "socket failed") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw TimeoutError(description: "bind \(path) failed") }
        // Receive on a thread of its own (recv blocks); a short timeout lets it notice stop().
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while let self, !self.stopped.withLock({ $0 }) {
                if self.paused.withLock({ $0 }) {
                    usleep(20_000)
                    continue
                }
                // recv without ancillary space: any passed fds are closed by the kernel.
                let n = recv(sock, &buffer, buffer.count, 0)
                if n > 0 {
                    let text = String(decoding: buffer[0..<n], as: UTF8.self)
                    self.messages.withLock { $0.append((.now, text)) }
                }
            }
        }
        thread.start()
    }

    /// Stops or resumes reading (a systemd busy in a daemon-reload).
    public func pause(_ on: Bool) { paused.withLock { $0 = on } }

    /// Sends filler datagrams to the socket until its queue is full (at most
    /// `limit`), so that the next sender blocks; returns how many went. The
    /// filler is "FILLER=1", which no test counts. A datagram in the queue is
    /// charged to its sender's buffer, so one sender can run out of buffer
    /// before the queue (`net.unix.max_dgram_qlen`, 512 on many machines) is
    /// full: fresh senders go on until one cannot send even its first.
    @discardableResult
    public func fill(limit: Int = 10_000) -> Int {
        var sent = 0
        while sent < limit {
            let (went, blocked) = fillFrom(newSocket: limit - sent)
            sent += went
            if went == 0 || !blocked { break }
        }
        return sent
    }

    /// One sender's share of `fill`: how many went, and whether it stopped
    /// because the send would block (rather than the limit or an error).
    private func fillFrom(newSocket limit: Int) -> (Int, Bool) {
        let sock = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard sock >= 0 else { return (0, false) }
        defer { close(sock) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        var sent = 0
        let filler = Array("FILLER=1".utf8)
        while sent < limit {
            let n = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(sock, filler, filler.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if n < 0 { return (sent, errno == EAGAIN || errno == EWOULDBLOCK) }
            sent += 1
        }
        return (sent, false)
    }

    public func stop() {
        stopped.withLock { $0 = true }
        unlink(path)
    }

    deinit {
        close(fd)
        unlink(path)
    }

    public var all: [String] { messages.withLock { $0.map(\.1) } }
    public var timed: [(ContinuousClock.Instant, String)] { messages.withLock { $0 } }

    /// Messages holding a given assignment (e.g. "READY=1").
    public func count(_ assignment: String) -> Int { all.filter { $0.split(separator: "\n").contains(Substring(assignment)) }.count }

    public func statuses() -> [String] {
        all.flatMap { $0.split(separator: "\n") }.filter { $0.hasPrefix("STATUS=") }.map { String($0.dropFirst(7)) }
    }

    public func lastTime(of assignment: String) -> ContinuousClock.Instant? {
        timed.last { $0.1.split(separator: "\n").contains(Substring(assignment)) }?.0
    }
}
