import Glibc
import Testing

@testable import DBusKit

/// The wire path without a bus: the bytes of signals of many header layouts
/// against libdbus's, and the queue that writes them against a socket that
/// takes little at a time or fails.
@Suite struct WireTests {
    static let paths = ["/", "/a", "/ab", "/abc", "/abcd", "/a/b_c/D9", "/" + String(repeating: "p", count: 61)]
    static let interfaces = ["a.b", "org.example.Test", "x.y.z1", "io.github.icwsbridge.Bridge1.Interactions"]
    static let members = ["M", "Me", "Mem", "Memb", "LongMemberName_x"]

    @Test func headersOfEveryLayoutAreLibdbusByteForByte() throws {
        // Each shape the writer has, with the value libdbus builds for it.
        let shapes: [(String, [DBusValue], (inout ArgumentWriter) -> Void)] = [
            ("", [], { _ in }),
            ("b", [.bool(true)], { $0.bool(true) }),
            ("aa{sv}b", [.vardicts([]), .bool(false)], { w in
                w.vardicts { _ in }
                w.bool(false)
            }),
            ("aa{sv}", [.vardicts([.vardict([]), .vardict([("k", .string("v")), ("n", .uint32(7)), ("e", .stringDict([]))])])], { w in
                w.vardicts { a in
                    a.vardict { _ in }
                    a.vardict { d in
                        d.string("k", "v")
                        d.uint32("n", 7)
                        d.stringDict("e", [])
                    }
                }
            }),
        ]
        for path in Self.paths {
            for interface in Self.interfaces {
                for member in Self.members {
                    for (signature, values, write) in shapes {
                        let built = try WireCheck.bytes(path: path, interface: interface, member: member, arguments: values).get()
                        let bound = values.reduce(0) { $0 + $1.encodedSizeBound }
                        let written = try WireCheck.bytes(
                            path: path, interface: interface, member: member, signature: signature, sizeBound: bound, write: write
                        ).get()
                        #expect(written == built, "\(path) \(interface).\(member) (\(signature))")
                    }
                }
            }
        }
    }

    @Test func aNameWithANULIsRefused() {
        for (path, interface, member) in [("/a\u{0}/b", "a.b", "M"), ("/a", "a.b\u{0}x", "M"), ("/a", "a.b", "M\u{0}")] {
            let r = WireCheck.bytes(path: path, interface: interface, member: member, signature: "", sizeBound: 0) { _ in }
            #expect(throws: BusError.self) { try r.get() }
        }
    }

    /// A connected pair of stream sockets; the first sends, with a small buffer.
    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        var size: Int32 = 4096
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        return (fds[0], fds[1])
    }

    static func message(_ i: Int, size: Int) throws -> (WireMessage, [UInt8]) {
        var bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
        let m = try #require(WireMessage(bytes, serial: UInt32(i)))
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(i).littleEndian, toByteOffset: 8, as: UInt32.self) }
        return (m, bytes)
    }

    @Test func theQueueWritesEverythingInOrderAcrossPartialWrites() throws {
        let (tx, rx) = try Self.socketPair()
        defer {
            close(tx)
            close(rx)
        }
        var queue = WireQueue()
        var expected: [UInt8] = []
        // Small and large messages: 300 of them, more than one sendmsg takes.
        for i in 0..<300 {
            let (m, b) = try Self.message(i, size: i % 50 == 0 ? 100_000 : 16 + i % 200)
            queue.append(m)
            expected += b
        }
        #expect(queue.pendingBytes == expected.count)
        var received: [UInt8] = []
        var wouldBlock = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while received.count < expected.count {
            queue.blocked = false
            switch queue.write(to: tx) {
            case .done: break
            case .wouldBlock:
                wouldBlock += 1
                #expect(!queue.isEmpty)
            case .failed(let e): Issue.record("write failed: errno \(e)")
            }
            let n = recv(rx, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 { received += buffer[0..<n] }
        }
        #expect(received == expected)
        #expect(queue.isEmpty)
        #expect(queue.pendingBytes == 0)
        #expect(wouldBlock > 0)
    }

    @Test func aClosedPeerIsAFailureAndEmptiesTheQueue() throws {
        let (tx, rx) = try Self.socketPair()
        defer { close(tx) }
        close(rx)
        var queue = WireQueue()
        queue.append(try Self.message(1, size: 64).0)
        guard case .failed(let e) = queue.write(to: tx) else {
            Issue.record("expected a failure")
            return
        }
        #expect(e == EPIPE)
        #expect(queue.isEmpty)
    }
}
