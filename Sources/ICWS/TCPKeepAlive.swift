#if canImport(Glibc)
    import Glibc
#endif

/// TCP keep-alive on the process's TCP connections: a second guard, beside
/// the wake-up watch and the stall deadline, for a stream whose peer vanished
/// without a FIN (a suspend, a NAT that forgot the connection). AsyncHTTPClient
/// offers no socket options on Linux, so the open TCP sockets are found in
/// `/proc/self/fd` when a message stream opens and each gets `SO_KEEPALIVE`
/// (idle 30 s, then a probe every 10 s, 3 lost probes end it). The daemon's
/// only TCP connections are its ICWS ones (D-Bus and sd_notify use Unix sockets).
enum TCPKeepAlive {
    static let idle: Int32 = 30
    static let interval: Int32 = 10
    static let probes: Int32 = 3

    /// Sets keep-alive on every connected TCP socket; returns how many.
    @discardableResult
    static func enableOnOpenSockets() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard let fd = Int32(name), fd > 2, isConnectedTCP(fd) else { continue }
            var on: Int32 = 1
            var idle = Self.idle, interval = Self.interval, probes = Self.probes
            let size = socklen_t(MemoryLayout<Int32>.size)
            guard setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size) == 0 else { continue }
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &probes, size)
            count += 1
        }
        return count
    }

    private static func isConnectedTCP(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return false }
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) == 0, value == Int32(SOCK_STREAM.rawValue) else { return false }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &length) == 0, value == AF_INET || value == AF_INET6 else { return false }
        var peer = sockaddr_storage()
        var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &peerLength) == 0 }
        }
    }
}
