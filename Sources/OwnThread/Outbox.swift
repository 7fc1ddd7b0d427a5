#if canImport(Glibc)
    import Glibc
#endif

/// What an `Outbox` holds until its thread takes it: items are added without
/// blocking, and the thread takes everything pending at once.
public protocol OutboxBuffer: Sendable {
    associatedtype Item
    var isEmpty: Bool { get }
    /// Adds `item`; a buffer may merge it with what waits or drop the oldest.
    mutating func add(_ item: Item)
    /// Everything pending, in order; the buffer is empty afterwards.
    mutating func take() -> Self
}

/// A thread of its own for a call that can block on another process
/// (`sd_notify` on a socket nobody reads, the journal or a stderr pipe that
/// stalls): the caller, a task on Swift's two-thread pool, only adds to a
/// buffer and never waits; the thread delivers what was added, in order.
/// The thread starts with the first item and then sleeps on a condition
/// variable until there is more: no polling.
public final class Outbox<Buffer: OutboxBuffer>: @unchecked Sendable {
    // Unchecked: `buffer`, `delivering` and `thread` are only touched with
    // `mutex` held; `deliver` and `name` are immutable.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>
    private var buffer: Buffer
    private var delivering = false
    private var thread = ThreadState.notStarted
    private let name: String
    private let deliver: @Sendable (Buffer) -> Void

    private enum ThreadState { case notStarted, running, unavailable }

    /// `deliver` runs on the outbox's thread with everything pending.
    public init(name: String, empty: Buffer, deliver: @escaping @Sendable (Buffer) -> Void) {
        self.name = name
        self.buffer = empty
        self.deliver = deliver
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        changed = .allocate(capacity: 1)
        changed.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        // `flush` waits on the monotonic clock: a clock change must not stretch it.
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(changed, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        changed.deallocate()
        mutex.deallocate()
    }

    /// Adds `item` and returns at once (unless no thread could be made at
    /// all: then it is delivered here, as it would have been without one).
    public func submit(_ item: Buffer.Item) {
        pthread_mutex_lock(mutex)
        buffer.add(item)
        if thread == .notStarted {
            thread = startThread(name: name) { [self] in loop() } ? .running : .unavailable
        }
        guard thread == .running else {
            let batch = buffer.take()
            pthread_mutex_unlock(mutex)
            deliver(batch)
            return
        }
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
    }

    /// Blocks the calling thread until everything submitted so far was
    /// delivered, or `timeout` passed; true when all went. For the end of
    /// the process (its last lines) and for tests, never on Swift's pool.
    @discardableResult
    public func flush(timeout: Duration) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
        deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !buffer.isEmpty || delivering {
            if pthread_cond_timedwait(changed, mutex, &deadline) == ETIMEDOUT { return buffer.isEmpty && !delivering }
        }
        return true
    }

    private func loop() {
        pthread_mutex_lock(mutex)
        while true {
            while buffer.isEmpty { pthread_cond_wait(changed, mutex) }
            let batch = buffer.take()
            delivering = true
            pthread_mutex_unlock(mutex)
            deliver(batch)
            pthread_mutex_lock(mutex)
            delivering = false
            pthread_cond_broadcast(changed)
        }
    }
}
