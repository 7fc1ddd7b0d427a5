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
    private let raw: MessageRefConnection
    private let loop: Loop
    private let shared = Mutex(Shared())
    private let objects = Mutex<[String: BusObject]>([:])
    private let signalStreams = Mutex<[UInt64: AsyncStream<SignalMessage>.Continuation]>([:])
    private let disconnectHandlers = Mutex<[@Sendable () -> Void]>([])
    /// Method calls whose reply is not sent yet (bounded: a caller that floods
    /// the daemon with calls gets LimitsExceeded, not an ever-growing backlog).
    private let callsInFlight = Atomic<Int>(0)
    private let wireSerials = Atomic<UInt32>(0)
    static let maxCallsInFlight = 512
    /// Bytes of signals handed over and not yet in libdbus's queue (or
    /// dropped with the connection); from then on libdbus's queue counts them
    /// (`dbus_connection_get_outgoing_size`, which `libdbusQueued` holds as
    /// the bus thread last saw it). What `waitForRoom` holds a producer back on.
    private let backlog = Atomic<Int>(0)
    private let libdbusQueued = Atomic<Int>(0)
    /// A producer waits in `waitForRoom`; the bus thread looks at the waiters only then.
    private let roomWanted = Atomic<Bool>(false)
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

    private func runLoop() {
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

    private func finish(_ conn: OpaquePointer) {
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
    private func run(_ items: [Work], _ conn: OpaquePointer) {
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

    /// Runs `work` on the bus thread with the raw connection. Order is kept.
    func submit(_ work: @escaping @Sendable (OpaquePointer) -> Void) -> Bool {
        enqueue(.run(work))
    }

    /// Sends a message marshalled in Swift (serial 0, see `signalBytes`):
    /// libdbus parses it back with `dbus_message_demarshal` (its full
    /// validation, on the calling thread) and the bus thread sends it with
    /// `dbus_connection_send`, in order with all other work. Nothing of ours
    /// writes to libdbus's socket.
    func send(wire bytes: [UInt8]) throws(BusError) {
        guard bytes.count >= 16 else { throw .invalidArgs("not a message: \(bytes.count) bytes") }
        // A parsed message needs a serial, and libdbus keeps the one it finds.
        // These are in the upper half of the range, away from libdbus's own
        // counter (which starts at 1): only replies refer to a serial, and
        // nothing replies to a signal.
        let serial = 0x8000_0000 | (wireSerials.wrappingAdd(1, ordering: .relaxed).newValue & 0x7FFF_FFFF)
        var bytes = bytes
        let parsed = bytes.withUnsafeMutableBytes { b -> Result<OpaquePointer, BusError> in
            b.storeBytes(of: serial.littleEndian, toByteOffset: 8, as: UInt32.self)
            return Self.parse(wire: UnsafeRawBufferPointer(b))
        }
        try send(signal: parsed.get(), bytes: bytes.count)
    }

    /// `enqueue`, with `bytes` of signal added to the backlog while it is accepted.
    private func enqueue(_ work: Work, counting bytes: Int) -> Bool {
        backlog.wrappingAdd(bytes, ordering: .sequentiallyConsistent)
        guard enqueue(work) else {
            backlog.wrappingSubtract(bytes, ordering: .sequentiallyConsistent)
            return false
        }
        return true
    }

    /// Signal bytes written, dropped, or handed to libdbus's queue (on the bus thread).
    private func settled(_ count: Int) {
        guard count > 0 else { return }
        backlog.wrappingSubtract(count, ordering: .sequentiallyConsistent)
    }

    /// Signal bytes not yet written: ours and libdbus's queue.
    private var unwritten: Int {
        backlog.load(ordering: .sequentiallyConsistent) + libdbusQueued.load(ordering: .sequentiallyConsistent)
    }

    /// On the bus thread, at the end of each `run` (once a round of the loop,
    /// after the socket events of the round before): notes the size of libdbus's queue, and lets producers waiting for room
    /// go on once what is unwritten is down to `backlogLow`.
    private func noteProgress(_ conn: OpaquePointer) {
        libdbusQueued.store(Int(dbus_connection_get_outgoing_size(conn)), ordering: .sequentiallyConsistent)
        if roomWanted.load(ordering: .sequentiallyConsistent), unwritten <= Self.backlogLow { resumeRoomWaiters() }
    }

    private func resumeRoomWaiters() {
        let waiters = shared.withLock { s -> [CheckedContinuation<Void, Never>] in
            roomWanted.store(false, ordering: .sequentiallyConsistent)
            defer { s.roomWaiters.removeAll() }
            return s.roomWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Bytes of signals handed over and not yet written (as of the bus thread's last round).
    public var backlogBytes: Int { unwritten }

    /// Returns at once while at most `backlogHigh` bytes of signals wait to
    /// be written; past that, once they are down to `backlogLow`, the
    /// connection closes, or the task is cancelled. A message source calls it
    /// between reads, so that a bus slower than the server holds the server
    /// back (its TCP window fills) rather than the daemon's memory growing.
    public func waitForRoom() async {
        guard unwritten > Self.backlogHigh else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = shared.withLock { s -> Bool in
                    guard !s.closing, !s.closed, !Task.isCancelled else { return true }
                    // Said before the backlog is read again: a bus thread that
                    // brings it down after this read sees the flag and resumes.
                    roomWanted.store(true, ordering: .sequentiallyConsistent)
                    guard unwritten > Self.backlogLow else { return true }
                    s.roomWaiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            resumeRoomWaiters()
        }
    }

    private func enqueue(_ work: Work) -> Bool {
        let (accepted, wake) = shared.withLock { s -> (Bool, Bool) in
            guard !s.closing, !s.closed else { return (false, false) }
            let empty = s.work.isEmpty
            s.work.append(work)
            guard s.holds > 0 else { return (true, empty) }
            if empty { s.wakeHeld = true }
            // A long batch does not keep its first signals waiting: every
            // `maxHeldWork` items the bus thread is woken all the same.
            guard s.wakeHeld, s.work.count >= Self.maxHeldWork else { return (true, false) }
            s.wakeHeld = false
            return (true, true)
        }
        if wake { wakeBusThread() }
        return accepted
    }

    private func wakeBusThread() {
        var one: UInt64 = 1
        _ = write(loop.wakeFD, &one, 8)
    }

    /// Runs `body`; what it (or anyone meanwhile) hands to the bus thread is
    /// sent with one wake-up of that thread per `maxHeldWork` items and one at
    /// the end, rather than one per message. For a burst of messages read at
    /// once; `body` must not wait on the bus (a reply could wait until its end).
    public func coalescing<E: Error>(_ body: () throws(E) -> Void) throws(E) {
        shared.withLock { $0.holds += 1 }
        defer {
            let wake = shared.withLock { s -> Bool in
                s.holds -= 1
                guard s.holds == 0, s.wakeHeld else { return false }
                s.wakeHeld = false
                return true
            }
            if wake { wakeBusThread() }
        }
        try body()
    }

    /// Closes the connection after flushing what was queued.
    public func close() {
        let first = shared.withLock { s -> Bool in
            defer { s.closing = true }
            return !s.closing && !s.closed
        }
        if first { wakeBusThread() }
    }

    public var isConnected: Bool { shared.withLock { !$0.closed && !$0.closing } }

    /// A no-op handed to the bus thread; `answered` once it ran. The watchdog
    /// hands one over, sleeps its interval, and pings only if it was answered:
    /// no timer and no extra wake-up per ping.
    public final class Probe: Sendable {
        private let done = Atomic<Bool>(false)
        public var answered: Bool { done.load(ordering: .acquiring) }
        func mark() { done.store(true, ordering: .releasing) }
    }

    public func probe() -> Probe {
        let p = Probe()
        _ = enqueue(.probe(p))
        return p
    }

    /// Called (on the bus thread) when the bus drops the connection; at once
    /// when it already has.
    public func onDisconnect(_ handler: @escaping @Sendable () -> Void) {
        let alreadyLost = shared.withLock { s -> Bool in
            disconnectHandlers.withLock { $0.append(handler) }
            return s.closed && !s.closing
        }
        if alreadyLost { handler() }
    }

    // MARK: Incoming messages (bus thread, inside dispatch)

    private func filter(_ message: OpaquePointer) -> DBusHandlerResult {
        switch dbus_message_get_type(message) {
        case DBUS_MESSAGE_TYPE_METHOD_CALL:
            return handleMethodCall(message)
        case DBUS_MESSAGE_TYPE_METHOD_RETURN, DBUS_MESSAGE_TYPE_ERROR:
            let serial = dbus_message_get_reply_serial(message)
            guard let (continuation, _) = loop.pending.removeValue(forKey: serial) else {
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
            }
            if dbus_message_get_type(message) == DBUS_MESSAGE_TYPE_ERROR {
                let name = dbus_message_get_error_name(message).map { String(cString: $0) } ?? "org.freedesktop.DBus.Error.Failed"
                let text = DBusValue.readAll(message)?.first?.stringValue ?? ""
                continuation.resume(returning: .failure(BusError(name: name, message: text)))
            } else if let values = DBusValue.readAll(message) {
                continuation.resume(returning: .success(values))
            } else {
                continuation.resume(returning: .failure(.failed("reply has a type this library cannot read")))
            }
            return DBUS_HANDLER_RESULT_HANDLED
        case DBUS_MESSAGE_TYPE_SIGNAL:
            let streams = signalStreams.withLock { $0 }
            guard !streams.isEmpty, let args = DBusValue.readAll(message) else { return DBUS_HANDLER_RESULT_NOT_YET_HANDLED }
            let signal = SignalMessage(
                sender: Self.string(dbus_message_get_sender(message)), path: Self.string(dbus_message_get_path(message)),
                interface: Self.string(dbus_message_get_interface(message)),
                member: Self.string(dbus_message_get_member(message)),
                signature: Self.string(dbus_message_get_signature(message)), arguments: args)
            for (_, c) in streams { c.yield(signal) }
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        default:
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }
    }

    static func string(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

    private func handleMethodCall(_ message: OpaquePointer) -> DBusHandlerResult {
        let path = Self.string(dbus_message_get_path(message))
        let interface = Self.string(dbus_message_get_interface(message))
        let member = Self.string(dbus_message_get_member(message))
        let exported = objects.withLock { $0 }
        guard let object = exported[path] else {
            if interface == "org.freedesktop.DBus.Introspectable" || interface.isEmpty, member == "Introspect" {
                let children = Self.childNodes(of: path, in: Array(exported.keys))
                if !children.isEmpty || path == "/" {
                    let xml = BusObject.introspectionHeader + "<node>\n"
                        + children.map { "  <node name=\"\($0)\"/>\n" }.joined() + "</node>\n"
                    reply(to: MessageRef(pointer: dbus_message_ref(message)), .success([.string(xml)]))
                    return DBUS_HANDLER_RESULT_HANDLED
                }
            }
            reply(
                to: MessageRef(pointer: dbus_message_ref(message)),
                .failure(BusError(name: "org.freedesktop.DBus.Error.UnknownObject", message: "no object at \(path)")))
            return DBUS_HANDLER_RESULT_HANDLED
        }
        let ref = MessageRef(pointer: dbus_message_ref(message))
        let signature = Self.string(dbus_message_get_signature(message))
        // Only the header is looked at here: a call of the wrong signature is
        // refused before its arguments are read, and the arguments of a good one
        // are read by the handler's task, so no message holds the bus thread.
        if let expected = object.expectedSignature(interface: interface, member: member), expected != signature {
            reply(to: ref, .failure(.invalidArgs("\(interface.isEmpty ? "" : interface + ".")\(member) takes (\(expected)), not (\(signature.prefix(64)))")))
            return DBUS_HANDLER_RESULT_HANDLED
        }
        guard callsInFlight.add(1, ordering: .relaxed).newValue <= Self.maxCallsInFlight else {
            callsInFlight.subtract(1, ordering: .relaxed)
            reply(to: ref, .failure(.limitsExceeded("too many calls in flight; try again later")))
            return DBUS_HANDLER_RESULT_HANDLED
        }
        let sender = Self.string(dbus_message_get_sender(message))
        Task {
            defer { self.callsInFlight.subtract(1, ordering: .relaxed) }
            guard let args = DBusValue.readAll(ref.pointer) else {
                self.reply(to: ref, .failure(.invalidArgs("arguments of a type this service does not accept")))
                return
            }
            let call = MethodCall(sender: sender, path: path, interface: interface, member: member, signature: signature, arguments: args)
            let result = await object.handle(call)
            self.reply(to: ref, result)
        }
        return DBUS_HANDLER_RESULT_HANDLED
    }

    static func childNodes(of path: String, in paths: [String]) -> [String] {
        let prefix = path == "/" ? "/" : path + "/"
        var names: [String] = []
        for p in paths where p.hasPrefix(prefix) {
            let rest = p.dropFirst(prefix.count)
            if let first = rest.split(separator: "/").first, !names.contains(String(first)) { names.append(String(first)) }
        }
        return names.sorted()
    }

    /// Sends the one reply of a method call (values or error), then drops the
    /// call. The reply is built on the calling thread: only the send is the
    /// bus thread's, so a large reply never holds it.
    func reply(to call: MessageRef, _ result: Result<[DBusValue], BusError>) {
        defer { dbus_message_unref(call.pointer) }
        if dbus_message_get_no_reply(call.pointer) != 0 { return }
        var replyMessage: OpaquePointer?
        switch Self.checkedSize(result) {
        case .success(let values):
            replyMessage = dbus_message_new_method_return(call.pointer)
            if let m = replyMessage {
                do { try DBusValue.appendAll(values, to: m) } catch {
                    logger.error("cannot encode a reply", metadata: ["error": "\(error)"])
                    dbus_message_unref(m)
                    replyMessage = Self.errorMessage(for: call.pointer, .failed("internal error encoding the reply"))
                }
            }
        case .failure(let error):
            replyMessage = Self.errorMessage(for: call.pointer, error)
        }
        guard let m = replyMessage else { return }
        let ref = MessageRef(pointer: m)
        let accepted = submit { conn in
            dbus_connection_send(conn, ref.pointer, nil)
            dbus_message_unref(ref.pointer)
        }
        if !accepted { dbus_message_unref(m) }
    }

    /// A reply that would pass the bus's limit becomes LimitsExceeded.
    static func checkedSize(_ result: Result<[DBusValue], BusError>) -> Result<[DBusValue], BusError> {
        guard case .success(let values) = result else { return result }
        let size = values.reduce(0) { $0 + $1.encodedSizeBound }
        guard size > maxMessageBytes - headerSlack else { return result }
        return .failure(.limitsExceeded("the reply would be about \(size >> 20) MiB, more than a D-Bus message may carry (\(maxMessageBytes >> 20) MiB)"))
    }

    static func errorMessage(for call: OpaquePointer, _ error: BusError) -> OpaquePointer? {
        let valid = error.name.withCString { dbus_validate_error_name($0, nil) } != 0
        let name = valid ? error.name : "org.freedesktop.DBus.Error.Failed"
        // An error message is text for a person: a few KiB at most, whatever it quotes.
        let message = error.message.utf8.count > 4096 ? String(decoding: error.message.utf8.prefix(4096), as: UTF8.self) + "…" : error.message
        return name.withCString { n in DBusValue.sanitized(message).withCString { dbus_message_new_error(call, n, $0) } }
    }

    // MARK: Server side

    /// Exports an object; its methods and properties answer from now on.
    public func export(_ object: BusObject) {
        object.attach(self)
        objects.withLock { $0[object.path] = object }
    }

    /// Withdraws the object at `path`: calls to it answer UnknownObject from now on.
    public func unexport(_ path: String) {
        objects.withLock { _ = $0.removeValue(forKey: path) }
    }

    /// The names of the nodes exported below `path` (for its introspection).
    func exportedChildren(of path: String) -> [String] {
        Self.childNodes(of: path, in: Array(objects.withLock { $0.keys }))
    }

    /// Requests a well-known name without queueing; fails clearly when it is taken.
    public func requestName(_ name: String) async throws(BusError) {
        guard name.withCString({ dbus_validate_bus_name($0, nil) }) != 0 else { throw .invalidArgs("invalid bus name \(name)") }
        let reply = try await call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "RequestName", arguments: [.string(name), .uint32(UInt32(DBUS_NAME_FLAG_DO_NOT_QUEUE))])
        switch reply.first?.uint32Value {
        case UInt32(DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER), UInt32(DBUS_REQUEST_NAME_REPLY_ALREADY_OWNER): return
        case UInt32(DBUS_REQUEST_NAME_REPLY_EXISTS):
            throw BusError(name: "org.freedesktop.DBus.Error.AddressInUse", message: "the name \(name) is already owned by another process")
        default:
            throw .failed("could not own the name \(name)")
        }
    }

    /// A signal message with its arguments, checked before libdbus sees them:
    /// names, value types, and a size the bus takes. The caller owns the reference.
    static func makeSignal(path: String, interface: String, member: String, arguments: [DBusValue]) throws(BusError) -> OpaquePointer {
        try makeSignal(path: path, interface: interface, member: member, arguments: arguments, sizeBound: arguments.reduce(0) { $0 + $1.encodedSizeBound })
    }

    /// The same, with the arguments' `encodedSizeBound` already summed.
    static func makeSignal(path: String, interface: String, member: String, arguments: [DBusValue], sizeBound: Int) throws(BusError) -> OpaquePointer {
        let m = try makeSignal(path: path, interface: interface, member: member, sizeBound: sizeBound)
        do { try DBusValue.appendAll(arguments, to: m) } catch {
            dbus_message_unref(m)
            throw .invalidArgs(error.description)
        }
        return m
    }

    /// An empty signal message, once its names are valid and `sizeBound`
    /// (of its arguments) is within what a message may carry.
    static func makeSignal(path: String, interface: String, member: String, sizeBound: Int) throws(BusError) -> OpaquePointer {
        try checkSignal(path: path, interface: interface, member: member, sizeBound: sizeBound)
        guard let m = dbus_message_new_signal(path, interface, member) else { throw .failed("out of memory") }
        return m
    }

    /// Throws unless the names are valid and `sizeBound` (of the arguments) is
    /// within what a message may carry.
    static func checkSignal(path: String, interface: String, member: String, sizeBound: Int) throws(BusError) {
        // (A NUL would hide the rest of a name from the C checks.)
        guard !DBusValue.hasNUL(path), !DBusValue.hasNUL(interface), !DBusValue.hasNUL(member),
            path.withCString({ dbus_validate_path($0, nil) }) != 0,
            interface.withCString({ dbus_validate_interface($0, nil) }) != 0,
            member.withCString({ dbus_validate_member($0, nil) }) != 0
        else { throw .invalidArgs("invalid signal path, interface or member") }
        guard sizeBound <= maxMessageBytes - headerSlack else {
            throw .limitsExceeded("signal \(member) would be about \(sizeBound >> 20) MiB, more than a D-Bus message may carry")
        }
    }

    /// Sends a signal; signals keep the order in which they were emitted.
    ///
    /// The message is built on the calling thread and sent by the bus thread
    /// (woken only when its queue was empty). Sending from the calling thread
    /// would save that hand-off, but a write error there makes libdbus remove
    /// its watches from that thread while the bus thread may be using them.
    public func emitSignal(path: String, interface: String, member: String, arguments: [DBusValue]) throws(BusError) {
        let bound = arguments.reduce(0) { $0 + $1.encodedSizeBound }
        try send(signal: Self.makeSignal(path: path, interface: interface, member: member, arguments: arguments, sizeBound: bound), bytes: bound)
    }

    /// Hands a built signal (whose reference it takes) to the bus thread;
    /// `bytes` (its size, or a bound) counts towards `waitForRoom`'s backlog
    /// until it is in libdbus's queue, which counts from then on.
    func send(signal m: OpaquePointer, bytes: Int) throws(BusError) {
        let ref = MessageRef(pointer: m)
        let accepted = enqueue(
            .run { [self] conn in
                dbus_connection_send(conn, ref.pointer, nil)
                dbus_message_unref(ref.pointer)
                settled(bytes)
            }, counting: bytes)
        if !accepted {
            dbus_message_unref(m)
            throw .disconnected("the bus connection is closed")
        }
    }

    // MARK: Client side

    /// Calls a method and waits for its reply.
    public func call(
        destination: String, path: String, interface: String, member: String, arguments: [DBusValue] = [],
        timeout: Duration = .seconds(25)
    ) async throws(BusError) -> [DBusValue] {
        guard destination.withCString({ dbus_validate_bus_name($0, nil) }) != 0 else { throw .invalidArgs("invalid destination \(destination)") }
        guard path.withCString({ dbus_validate_path($0, nil) }) != 0 else { throw .invalidArgs("invalid object path \(path)") }
        guard interface.withCString({ dbus_validate_interface($0, nil) }) != 0 else { throw .invalidArgs("invalid interface \(interface)") }
        guard member.withCString({ dbus_validate_member($0, nil) }) != 0 else { throw .invalidArgs("invalid member \(member)") }
        guard let m = dbus_message_new_method_call(destination, path, interface, member) else { throw .failed("out of memory") }
        do { try DBusValue.appendAll(arguments, to: m) } catch {
            dbus_message_unref(m)
            throw .invalidArgs(error.description)
        }
        let ref = MessageRef(pointer: m)
        let loop = self.loop
        let result: Result<[DBusValue], BusError> = await withCheckedContinuation { continuation in
            let accepted = submit { conn in
                var serial: UInt32 = 0
                let sent = dbus_connection_send(conn, ref.pointer, &serial) != 0
                dbus_message_unref(ref.pointer)
                guard sent else {
                    continuation.resume(returning: .failure(.failed("could not send")))
                    return
                }
                loop.pending[serial] = (continuation, .now + timeout)
            }
            if !accepted {
                dbus_message_unref(m)
                continuation.resume(returning: .failure(.disconnected("the bus connection is closed")))
            }
        }
        return try result.get()
    }

    /// Adds a match rule on the bus (for receiving signals).
    public func addMatch(_ rule: String) async throws(BusError) {
        _ = try await call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "AddMatch", arguments: [.string(rule)])
    }

    /// Every signal this connection receives from now on (add a match rule to get them).
    public func signals() -> AsyncStream<SignalMessage> {
        let (stream, continuation) = AsyncStream<SignalMessage>.makeStream(bufferingPolicy: .unbounded)
        let id = shared.withLock { s -> UInt64 in
            s.nextStreamId += 1
            return s.nextStreamId
        }
        signalStreams.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.signalStreams.withLock { $0.removeValue(forKey: id) }
        }
        if !isConnected { continuation.finish() }
        return stream
    }
}
