import CDBus
import OwnThread
import FoundationEssentials
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Handing work to the bus thread: in order, with flow control for signals, coalesced wake-ups, probes, closing.
extension BusConnection {
    /// Runs `work` on the bus thread with the raw connection. Order is kept.
    func submit(_ work: @escaping @Sendable (OpaquePointer) -> Void) -> Bool {
        enqueue(.run(work))
    }

    /// Sends a message marshalled in Swift (serial 0, see `signalBytes`):
    /// libdbus parses it back with `dbus_message_demarshal` (its full
    /// validation, on the calling thread) and the bus thread sends it with
    /// `dbus_connection_send`, in order with all other work. Nothing of ours
    /// writes to libdbus's socket.
    func send(wire bytes: consuming [UInt8]) throws(BusError) {
        guard bytes.count >= 16 else { throw .invalidArgs("not a message: \(bytes.count) bytes") }
        // A parsed message needs a serial, and libdbus keeps the one it finds.
        // These are in the upper half of the range, away from libdbus's own
        // counter (which starts at 1): only replies refer to a serial, and
        // nothing replies to a signal.
        let serial = 0x8000_0000 | (wireSerials.wrappingAdd(1, ordering: .relaxed).newValue & 0x7FFF_FFFF)
        var bytes = bytes  // moved, not copied: the caller hands its only reference over
        let parsed = bytes.withUnsafeMutableBytes { b -> Result<OpaquePointer, BusError> in
            b.storeBytes(of: serial.littleEndian, toByteOffset: 8, as: UInt32.self)
            return Self.parse(wire: UnsafeRawBufferPointer(b))
        }
        try send(signal: parsed.get(), bytes: bytes.count)
    }

    /// `enqueue`, with `bytes` of signal added to the backlog while it is accepted.
    func enqueue(_ work: Work, counting bytes: Int) -> Bool {
        backlog.wrappingAdd(bytes, ordering: .sequentiallyConsistent)
        guard enqueue(work) else {
            backlog.wrappingSubtract(bytes, ordering: .sequentiallyConsistent)
            return false
        }
        return true
    }

    /// Signal bytes written, dropped, or handed to libdbus's queue (on the bus thread).
    func settled(_ count: Int) {
        guard count > 0 else { return }
        backlog.wrappingSubtract(count, ordering: .sequentiallyConsistent)
    }

    /// Signal bytes not yet written: ours and libdbus's queue.
    var unwritten: Int {
        backlog.load(ordering: .sequentiallyConsistent) + libdbusQueued.load(ordering: .sequentiallyConsistent)
    }

    /// On the bus thread, at the end of each `run` (once a round of the loop,
    /// after the socket events of the round before): notes the size of libdbus's queue, and lets producers waiting for room
    /// go on once what is unwritten is down to `backlogLow`.
    func noteProgress(_ conn: OpaquePointer) {
        libdbusQueued.store(Int(dbus_connection_get_outgoing_size(conn)), ordering: .sequentiallyConsistent)
        if roomWanted.load(ordering: .sequentiallyConsistent), unwritten <= Self.backlogLow { resumeRoomWaiters() }
    }

    func resumeRoomWaiters() {
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

    func enqueue(_ work: Work) -> Bool {
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

    func wakeBusThread() {
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
}
