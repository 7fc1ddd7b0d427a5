import CDBus
import OwnThread
import FoundationEssentials
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Which bus to connect to.
public enum BusAddress: Sendable, Equatable, CustomStringConvertible {
    case system
    case session
    case address(String)

    /// `system`, `session`, or a D-Bus address such as `unix:path=/run/x`.
    public init(parsing text: String) {
        switch text {
        case "system": self = .system
        case "session": self = .session
        default: self = .address(text)
        }
    }

    public var description: String {
        switch self {
        case .system: return "system"
        case .session: return "session"
        case .address(let a): return a
        }
    }
}

/// A message as a method handler or a signal subscriber sees it.
public struct IncomingMessage: Sendable {
    public var sender: String
    public var path: String
    public var interface: String
    public var member: String
    public var signature: String
    public var arguments: [DBusValue]
}

/// A method call as a handler sees it.
public typealias MethodCall = IncomingMessage
/// A signal received by a client.
public typealias SignalMessage = IncomingMessage

/// A message pointer handed between threads. libdbus messages are
/// reference-counted atomically once `dbus_threads_init_default()` ran, and
/// each one is used by one thread at a time here.
struct MessageRef: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// One connection to a bus. A dedicated thread owns the libdbus connection
/// and runs its poll/read/dispatch loop (the connection's watches and
/// timeouts plus a wake-up eventfd); other threads hand it work through a
/// queue. Method handlers run as tasks and reply exactly once, later, from
/// any thread; nothing blocks the bus thread and nothing dispatches re-entrantly.
public final class BusConnection: Sendable {
    public let uniqueName: String
    let logger: Logger
    // The raw connection is touched only on the bus thread (see `submit`).
    let raw: MessageRefConnection
    let loop: Loop
    let shared = Mutex(Shared())
    let objects = Mutex<[String: BusObject]>([:])
    let signalStreams = Mutex<[UInt64: AsyncStream<SignalMessage>.Continuation]>([:])
    let disconnectHandlers = Mutex<[@Sendable () -> Void]>([])
    /// Method calls whose reply is not sent yet (bounded: a caller that floods
    /// the daemon with calls gets LimitsExceeded, not an ever-growing backlog).
    let callsInFlight = Atomic<Int>(0)
    let wireSerials = Atomic<UInt32>(0)
    static let maxCallsInFlight = 512
    /// Bytes of signals handed over and not yet in libdbus's queue (or
    /// dropped with the connection); from then on libdbus's queue counts them
    /// (`dbus_connection_get_outgoing_size`, which `libdbusQueued` holds as
    /// the bus thread last saw it). What `waitForRoom` holds a producer back on.
    let backlog = Atomic<Int>(0)
    let libdbusQueued = Atomic<Int>(0)
    /// A producer waits in `waitForRoom`; the bus thread looks at the waiters only then.
    let roomWanted = Atomic<Bool>(false)
    /// `waitForRoom` waits while more than `backlogHigh` bytes of signals are
    /// not written, until they are down to `backlogLow`: a source faster than the
    /// bus (a server's burst, a bus that stopped reading) is held back
    /// instead of growing the daemon's memory.
    public static let backlogHigh = 4 << 20
    public static let backlogLow = 1 << 20
    /// Work items queued inside `coalescing` before the bus thread is woken anyway.
    static let maxHeldWork = 128
    /// The largest message the bus takes: `max_message_size` of dbus-daemon's
    /// system and session configurations (32 MiB). A bus drops a client that
    /// sends more, so replies and signals past it are refused here first.
    public static let maxMessageBytes = 32 << 20
    /// Room kept for the header (names, path, signature) below `maxMessageBytes`.
    static let headerSlack = 64 * 1024

    /// Work for the bus thread, in order.
    enum Work: Sendable {
        case run(@Sendable (OpaquePointer) -> Void)
        /// Answered at once, even while other work waits for the socket: it
        /// asks whether the bus thread runs, not how fast the bus reads.
        case probe(Probe)
    }

    struct Shared {
        var work: [Work] = []
        var closing = false
        var closed = false
        var nextStreamId: UInt64 = 0
        /// Callers inside `coalescing` now; while any is, work is queued
        /// without waking the bus thread (`wakeHeld`: a wake-up is owed), and
        /// the last one out wakes it.
        var holds = 0
        var wakeHeld = false
        /// Producers waiting in `waitForRoom`.
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
    }

    struct MessageRefConnection: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Connects and registers on the bus (on the new bus thread).
    public static func connect(_ address: BusAddress, logger: Logger) async throws(BusError) -> BusConnection {
        dbus_threads_init_default()
        let result: Result<BusConnection, BusError> = await withCheckedContinuation { continuation in
            let started = startThread(name: "dbus") {
                var err = CDBus.DBusError()
                dbus_error_init(&err)
                var conn: OpaquePointer?
                switch address {
                case .system: conn = dbus_bus_get_private(DBUS_BUS_SYSTEM, &err)
                case .session: conn = dbus_bus_get_private(DBUS_BUS_SESSION, &err)
                case .address(let a):
                    conn = dbus_connection_open_private(a, &err)
                    if let c = conn, dbus_bus_register(c, &err) == 0 {
                        dbus_connection_close(c)
                        dbus_connection_unref(c)
                        conn = nil
                    }
                }
                guard let c = conn else {
                    let e = BusConnection.takeError(&err, fallback: "cannot connect to the \(address) bus")
                    continuation.resume(returning: .failure(e))
                    return
                }
                dbus_connection_set_exit_on_disconnect(c, 0)
                let name = dbus_bus_get_unique_name(c).map { String(cString: $0) } ?? ""
                guard let connection = BusConnection(raw: c, uniqueName: name, logger: logger) else {
                    dbus_connection_close(c)
                    dbus_connection_unref(c)
                    continuation.resume(returning: .failure(.failed("cannot set up the bus loop")))
                    return
                }
                continuation.resume(returning: .success(connection))
                connection.runLoop()
            }
            if !started { continuation.resume(returning: .failure(.failed("cannot start the bus thread"))) }
        }
        return try result.get()
    }

    static func takeError(_ err: inout CDBus.DBusError, fallback: String) -> BusError {
        defer { dbus_error_free(&err) }
        guard dbus_error_is_set(&err) != 0 else { return .failed(fallback) }
        let name = err.name.map { String(cString: $0) } ?? "org.freedesktop.DBus.Error.Failed"
        let message = err.message.map { String(cString: $0) } ?? fallback
        return BusError(name: name, message: message)
    }

    private init?(raw: OpaquePointer, uniqueName: String, logger: Logger) {
        self.raw = MessageRefConnection(pointer: raw)
        self.uniqueName = uniqueName
        self.logger = logger
        guard let loop = Loop() else { return nil }
        self.loop = loop
        let data = Unmanaged.passUnretained(loop).toOpaque()
        dbus_connection_set_watch_functions(
            raw,
            { watch, data in
                guard let watch, let data else { return 0 }
                Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue().watches.append(watch)
                return 1
            },
            { watch, data in
                guard let watch, let data else { return }
                Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue().watches.removeAll { $0 == watch }
            },
            { _, data in
                // The enabled state is read on every iteration. Toggles come from
                // libdbus on the bus thread (its queue filled or emptied); the
                // wake-up makes the next poll ask for what the watch now wants.
                guard let data else { return }
                var one: UInt64 = 1
                _ = write(Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue().wakeFD, &one, 8)
            },
            data, nil)
        dbus_connection_set_timeout_functions(
            raw,
            { timeout, data in
                guard let timeout, let data else { return 0 }
                Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue().timeouts[timeout] = .now
                return 1
            },
            { timeout, data in
                guard let timeout, let data else { return }
                Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue().timeouts[timeout] = nil
            },
            { timeout, data in
                guard let timeout, let data else { return }
                Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue().timeouts[timeout] = .now
            },
            data, nil)
        let selfData = Unmanaged.passUnretained(self).toOpaque()
        dbus_connection_add_filter(
            raw,
            { _, message, data in
                guard let message, let data else { return DBUS_HANDLER_RESULT_NOT_YET_HANDLED }
                return Unmanaged<BusConnection>.fromOpaque(data).takeUnretainedValue().filter(message)
            }, selfData, nil)
    }

    /// State of the bus thread. Unchecked: it is touched only on the bus
    /// thread (from the loop, from libdbus callbacks it runs, and from work items).
    final class Loop: @unchecked Sendable {
        var watches: [OpaquePointer] = []
        var timeouts: [OpaquePointer: ContinuousClock.Instant] = [:]
        var pending: [UInt32: (CheckedContinuation<Result<[DBusValue], BusError>, Never>, ContinuousClock.Instant)] = [:]
        let wakeFD: Int32

        init?() {
            wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
            if wakeFD < 0 { return nil }
        }

        // Closed only when the connection object goes, so a late wake-up never hits a reused fd.
        deinit { _ = Glibc.close(wakeFD) }
    }

    // MARK: The bus thread

    func runLoop() {
        let conn = raw.pointer
        var fds: [pollfd] = []
        var owners: [OpaquePointer?] = []
        while true {
            // Work handed over by other threads, in order.
            let (work, closing) = shared.withLock { s -> ([Work], Bool) in
                defer { s.work.removeAll(keepingCapacity: true) }
                return (s.work, s.closing)
            }
            run(work, conn)
            while dbus_connection_dispatch(conn) == DBUS_DISPATCH_DATA_REMAINS {}
            if closing || dbus_connection_get_is_connected(conn) == 0 { break }

            fds.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: loop.wakeFD, events: Int16(POLLIN), revents: 0))
            owners.append(nil)
            for w in loop.watches where dbus_watch_get_enabled(w) != 0 {
                let flags = dbus_watch_get_flags(w)
                var events: Int16 = 0
                if flags & DBUS_WATCH_READABLE.rawValue != 0 { events |= Int16(POLLIN) }
                if flags & DBUS_WATCH_WRITABLE.rawValue != 0 { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: dbus_watch_get_unix_fd(w), events: events, revents: 0))
                owners.append(w)
            }
            let now = ContinuousClock.now
            var deadline: ContinuousClock.Instant?
            for (t, start) in loop.timeouts where dbus_timeout_get_enabled(t) != 0 {
                let due = start + .milliseconds(Int(dbus_timeout_get_interval(t)))
                deadline = deadline.map { min($0, due) } ?? due
            }
            for (_, (_, due)) in loop.pending { deadline = deadline.map { min($0, due) } ?? due }
            var timeoutMs: Int32 = -1
            if let deadline {
                let ms = (deadline - now).components
                timeoutMs = Int32(clamping: max(0, ms.seconds * 1000 + ms.attoseconds / 1_000_000_000_000_000 + 1))
            }
            let n = poll(&fds, nfds_t(fds.count), timeoutMs)
            if n < 0 && errno != EINTR {
                logger.error("poll on the bus connection failed", metadata: ["errno": "\(errno)"])
                break
            }
            if fds[0].revents != 0 {
                var counter: UInt64 = 0
                _ = read(loop.wakeFD, &counter, 8)
            }
            for i in 1..<fds.count where fds[i].revents != 0 {
                guard let w = owners[i], loop.watches.contains(w) else { continue }
                var flags: UInt32 = 0
                let r = Int32(fds[i].revents)
                if r & Int32(POLLIN) != 0 { flags |= DBUS_WATCH_READABLE.rawValue }
                if r & Int32(POLLOUT) != 0 { flags |= DBUS_WATCH_WRITABLE.rawValue }
                if r & Int32(POLLERR) != 0 { flags |= DBUS_WATCH_ERROR.rawValue }
                if r & Int32(POLLHUP) != 0 { flags |= DBUS_WATCH_HANGUP.rawValue }
                dbus_watch_handle(w, flags)
            }
            let after = ContinuousClock.now
            for (t, start) in loop.timeouts where dbus_timeout_get_enabled(t) != 0 {
                if start + .milliseconds(Int(dbus_timeout_get_interval(t))) <= after {
                    loop.timeouts[t] = after
                    dbus_timeout_handle(t)
                }
            }
            for (serial, (continuation, due)) in loop.pending where due <= after {
                loop.pending[serial] = nil
                continuation.resume(returning: .failure(.noReply("no reply within the timeout")))
            }
        }
        finish(conn)
    }

    func finish(_ conn: OpaquePointer) {
        // Flush what is queued (bounded), then close.
        let deadline = ContinuousClock.now + .seconds(2)
        while dbus_connection_get_is_connected(conn) != 0, ContinuousClock.now < deadline {
            run([], conn)
            guard dbus_connection_has_messages_to_send(conn) != 0 else { break }
            _ = dbus_connection_read_write(conn, 100)
        }
        let (wasClosing, late, roomWaiters) = shared.withLock { s -> (Bool, [Work], [CheckedContinuation<Void, Never>]) in
            s.closed = true
            defer {
                s.work.removeAll()
                s.roomWaiters.removeAll()
            }
            return (s.closing, s.work, s.roomWaiters)
        }
        // What was handed over as the connection went runs now, after the
        // close: libdbus drops what it sends, calls are failed below, probes
        // are answered.
        dbus_connection_close(conn)
        run(late, conn)
        // Nothing waits for room on a closed connection.
        libdbusQueued.store(0, ordering: .sequentiallyConsistent)
        for w in roomWaiters { w.resume() }
        for (_, (continuation, _)) in loop.pending {
            continuation.resume(returning: .failure(.disconnected("the bus connection is closed")))
        }
        loop.pending.removeAll()
        let streams = signalStreams.withLock { s in
            defer { s.removeAll() }
            return s
        }
        for (_, c) in streams { c.finish() }
        dbus_connection_unref(conn)
        if !wasClosing {
            logger.error("disconnected from the bus")
            for h in disconnectHandlers.withLock({ $0 }) { h() }
        }
    }

    /// Runs work in the order it was handed over, then notes libdbus's queue.
    func run(_ items: [Work], _ conn: OpaquePointer) {
        for item in items {
            switch item {
            case .probe(let p): p.mark()
            case .run(let body): body(conn)
            }
        }
        noteProgress(conn)
    }

    /// A message parsed from wire bytes with libdbus's full validation, as
    /// dbus-daemon checks every message it receives. The caller owns it.
    static func parse(wire bytes: UnsafeRawBufferPointer) -> Result<OpaquePointer, BusError> {
        var err = CDBus.DBusError()
        dbus_error_init(&err)
        let parsed = bytes.baseAddress.flatMap {
            dbus_message_demarshal($0.assumingMemoryBound(to: CChar.self), Int32(clamping: bytes.count), &err)
        }
        guard let parsed else { return .failure(takeError(&err, fallback: "the bytes do not parse as a message")) }
        return .success(parsed)
    }

}
