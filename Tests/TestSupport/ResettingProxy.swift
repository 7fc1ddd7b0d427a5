import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP proxy on 127.0.0.1 in front of a server, that can break every
/// connection with a real TCP reset (SO_LINGER 0), as a failing network would,
/// and stop listening for a while (connections refused, as with a host gone).
public final class ResettingProxy: @unchecked Sendable {
    // Unchecked: the port is fixed at start; the sockets are behind locks.
    public let port: Int
    private let listenerFD: Mutex<Int32>
    private let targetPort: Int
    private let sockets = Mutex<[Int32]>([])
    private let stopped = Mutex(false)
    private let resetting = Mutex(false)
    public private(set) var resets = 0

    public init(targetPort: Int) throws {
        self.targetPort = targetPort
        let fd = try Self.listen(port: 0)
        listenerFD = Mutex(fd)
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let thread = Thread { [weak self] in self?.acceptLoop() }
        thread.start()
    }

    static func listen(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: port)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            close(fd)
            throw TimeoutError(description: "proxy cannot listen on port \(port)")
        }
        return fd
    }

    /// Stops listening and resets every connection: connecting is refused until `up()`.
    public func down() {
        let fd = listenerFD.withLock { fd in
            defer { fd = -1 }
            return fd
        }
        if fd >= 0 {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
        resetAll()
    }

    /// Listens again on the same port.
    public func up() throws {
        let fd = try Self.listen(port: port)
        listenerFD.withLock { $0 = fd }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return a
    }

    private func acceptLoop() {
        while !stopped.withLock({ $0 }) {
            let listener = listenerFD.withLock { $0 }
            if listener < 0 {
                Thread.sleep(forTimeInterval: 0.01)
                continue
            }
            let client = accept(listener, nil, nil)
            if client < 0 {
                if listenerFD.withLock({ $0 }) == listener { Thread.sleep(forTimeInterval: 0.001) }
                continue
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(port: targetPort)
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if ok != 0 {
                close(client)
                close(upstream)
                continue
            }
            sockets.withLock { $0 += [client, upstream] }
            Thread { [weak self] in self?.pump(from: client, to: upstream) }.start()
            Thread { [weak self] in self?.pump(from: upstream, to: client) }.start()
        }
    }

    private func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(from, &buffer, buffer.count)
            if n <= 0 { break }
            var off = 0
            while off < n {
                let w = buffer.withUnsafeBytes { write(to, $0.baseAddress! + off, n - off) }
                if w <= 0 { return }
                off += w
            }
        }
        if resetting.withLock({ $0 }) {
            // SO_LINGER 0 is set: closing now sends the RST (a close while another
            // thread still sat in read() would not).
            close(from)
        } else {
            shutdown(to, Int32(SHUT_WR))
        }
    }

    /// Breaks every open connection with an RST.
    public func resetAll() {
        let all = sockets.withLock { s in
            defer { s.removeAll() }
            return s
        }
        resetting.withLock { $0 = true }
        for fd in all {
            var l = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            shutdown(fd, Int32(SHUT_RD))  // wakes the pump blocked in read(); it closes the socket
        }
        resets += 1
        Thread.sleep(forTimeInterval: 0.05)
        resetting.withLock { $0 = false }
    }

    public func stop() {
        stopped.withLock { $0 = true }
        down()
    }
}
