import Foundation
@testable import ICWS
import Testing

/// TCP keep-alive, the second guard beside the wake-up watch: every connected
/// TCP socket of the process gets SO_KEEPALIVE with the daemon's timings.
@Suite struct TCPKeepAliveTests {
    @Test func connectedTCPSocketsGetKeepAlive() throws {
        // A listener and a connected client on loopback, in this process.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        try #require(bound == 0 && listen(listener, 4) == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(client >= 0)
        defer { close(client) }
        let connected = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) } }
        try #require(connected == 0)
        func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
            var value: Int32 = -1
            var size = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, level, name, &value, &size)
            return value
        }
        #expect(option(client, SOL_SOCKET, SO_KEEPALIVE) == 0)
        let count = TCPKeepAlive.enableOnOpenSockets()
        #expect(count >= 1)
        #expect(option(client, SOL_SOCKET, SO_KEEPALIVE) == 1)
        #expect(option(client, Int32(IPPROTO_TCP), TCP_KEEPIDLE) == TCPKeepAlive.idle)
        #expect(option(client, Int32(IPPROTO_TCP), TCP_KEEPINTVL) == TCPKeepAlive.interval)
        #expect(option(client, Int32(IPPROTO_TCP), TCP_KEEPCNT) == TCPKeepAlive.probes)
        // The listener (not connected) is left alone.
        #expect(option(listener, SOL_SOCKET, SO_KEEPALIVE) == 0)
    }
}
