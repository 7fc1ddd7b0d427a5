import CNetlink
import DBusKit
import OwnThread
import Glibc
import ICWS
import Logging
import ServiceLifecycle

/// Tells the supervisor when the machine wakes from a suspend or the network
/// changes, so the session is checked at once rather than after `stall-timeout`:
/// logind's `PrepareForSleep(false)` on the system bus; NetworkManager's
/// `StateChanged` to 70 (connected-global) where NetworkManager runs, else
/// rtnetlink address and route changes. The system bus is used even when the
/// daemon serves the session bus (user unit); when it or a service is missing
/// the log says so once, at info.
struct WakeWatcher: Service {
    let supervisor: SessionSupervisor
    let logger: Logger

    static let logind = "org.freedesktop.login1"
    static let networkManager = "org.freedesktop.NetworkManager"
    /// NM_STATE_CONNECTED_GLOBAL.
    static let connectedGlobal: UInt32 = 70

    /// Watches until the daemon stops. When there is nothing left to watch
    /// (no system bus and no rtnetlink), it waits for the stop: a service of
    /// the group that returns would stop the whole daemon.
    func run() async throws {
        try? await watch()
        try await gracefulShutdown()
    }

    private func watch() async throws {
        let system: BusConnection
        do {
            system = try await BusConnection.connect(.system, logger: logger)
        } catch {
            logger.info("no system bus: suspend is not watched; network changes come from rtnetlink", metadata: ["error": "\(error.message)"])
            try await watchNetlink()
            return
        }
        defer { system.close() }
        let hasLogind = await Self.hasOwner(system, Self.logind)
        let hasNetworkManager = await Self.hasOwner(system, Self.networkManager)
        if !hasLogind { logger.info("logind is not on the system bus: suspend is not watched") }
        do {
            // The match holds even when logind starts later.
            try await system.addMatch("type='signal',sender='\(Self.logind)',interface='org.freedesktop.login1.Manager',member='PrepareForSleep'")
            try await system.addMatch("type='signal',interface='org.freedesktop.NetworkManager',member='StateChanged'")
        } catch {
            logger.info("cannot watch the system bus for suspend and network changes", metadata: ["error": "\(error.message)"])
        }
        let signals = system.signals()
        let netlink: Task<Void, any Error>?
        if hasNetworkManager {
            netlink = nil
        } else {
            logger.info("NetworkManager is not on the system bus: network changes come from rtnetlink")
            netlink = Task { try await watchNetlink() }
        }
        defer { netlink?.cancel() }
        try await untilGracefulShutdown {
            for await s in signals {
                switch (s.interface, s.member) {
                case ("org.freedesktop.login1.Manager", "PrepareForSleep") where s.arguments.first?.boolValue == false:
                    logger.info("resumed from suspend")
                    supervisor.wake()
                case ("org.freedesktop.NetworkManager", "StateChanged") where s.arguments.first?.uint32Value == Self.connectedGlobal:
                    logger.info("the network is connected again")
                    supervisor.wake()
                default:
                    continue
                }
            }
        }
    }

    static func hasOwner(_ bus: BusConnection, _ name: String) async -> Bool {
        let answer = try? await bus.call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "NameHasOwner",
            arguments: [.string(name)], timeout: .seconds(5))
        return answer?.first?.boolValue ?? false
    }

    /// Address and route changes from rtnetlink, on a thread of their own that
    /// sleeps in `recv`; a burst of changes is one wake-up.
    func watchNetlink() async throws {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else {
            logger.info("no rtnetlink socket: network changes are not watched", metadata: ["errno": "\(errno)"])
            return
        }
        var addr = sockaddr_nl()
        addr.nl_family = sa_family_t(AF_NETLINK)
        addr.nl_groups = UInt32(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            logger.info("cannot bind rtnetlink: network changes are not watched", metadata: ["errno": "\(errno)"])
            return
        }
        let changes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let reader = NetlinkReader(fd: fd, changes: changes.continuation)
        reader.start()
        defer { reader.stop() }
        try await untilGracefulShutdown {
            for await _ in changes.stream {
                // Let a burst (address, then route) settle into one wake-up.
                try? await loopSleep(for: .milliseconds(300))
                logger.info("the network changed")
                supervisor.wake()
            }
        }
    }
}

/// Reads rtnetlink messages on its own thread; each read is one change.
final class NetlinkReader: @unchecked Sendable {
    // Unchecked: `fd` is set once; the thread only reads it.
    let fd: Int32
    let changes: AsyncStream<Void>.Continuation

    init(fd: Int32, changes: AsyncStream<Void>.Continuation) {
        self.fd = fd
        self.changes = changes
    }

    func start() {
        _ = startThread(name: "netlink") { [self] in
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                // The kernel dropped messages for us: changes all the same.
                if n < 0 && errno == ENOBUFS {
                    changes.yield()
                    continue
                }
                if n <= 0 { break }
                if buffer.withUnsafeBytes({ Self.connects(UnsafeRawBufferPointer(rebasing: $0.prefix(n))) }) { changes.yield() }
            }
            changes.finish()
        }
    }

    /// True when the messages hold a change that can bring the network back:
    /// a new address, or a new default route. Deletions, other routes and the
    /// host's routine churn are not wake-ups.
    static func connects(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let type = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            guard length >= 16, offset + length <= bytes.count else { return false }
            if type == UInt16(RTM_NEWADDR) { return true }
            // rtmsg: family, then the destination's prefix length (0: the default route).
            if type == UInt16(RTM_NEWROUTE), length >= 18, bytes[offset + 17] == 0 { return true }
            offset += (length + 3) & ~3
        }
        return false
    }

    /// Asks the thread's `recv` to end. The socket is not closed under it (a
    /// reused descriptor could be read); it goes with the process.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
    }
}
