import Synchronization

/// Exponential backoff with full jitter: attempt n waits a uniform draw in
/// [floor, min(cap, initial × 2ⁿ)).
public struct BackoffPolicy: Sendable, Equatable {
    public var initial: Duration
    public var cap: Duration
    public var floor: Duration

    public init(initial: Duration = .seconds(1), cap: Duration = .seconds(60), floor: Duration = .milliseconds(100)) {
        self.initial = initial
        self.cap = cap
        self.floor = floor
    }

    /// The ceiling of attempt `attempt` (0-based), before jitter.
    public func ceiling(attempt: Int) -> Duration {
        let capped = min(max(attempt, 0), 62)
        let factor = Double(UInt64(1) << UInt64(capped))
        let seconds = min(initial.seconds * factor, cap.seconds)
        return .milliseconds(Int64(seconds * 1000))
    }

    /// The wait before attempt `attempt`, given a uniform draw `unit` in [0, 1).
    public func delay(attempt: Int, unit: Double) -> Duration {
        let ceiling = ceiling(attempt: attempt)
        let u = min(max(unit, 0), 1)
        let ms = Int64((ceiling.seconds * 1000 * u).rounded(.down))
        return max(.milliseconds(ms), min(floor, ceiling))
    }
}

/// Time as the supervisor sees it; tests inject a clock that does not sleep.
public protocol SupervisorClock: Sendable {
    /// Monotonic time since an arbitrary start.
    func now() -> Duration
    func sleep(for duration: Duration) async throws
}

public struct SystemSupervisorClock: SupervisorClock {
    let start = ContinuousClock.now
    public init() {}
    public func now() -> Duration { ContinuousClock.now - start }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// A one-consumer queue whose `next()` can be cancelled without losing
/// anything queued (unlike AsyncStream, whose consumer cancellation ends it).
final class Mailbox<Element: Sendable>: Sendable {
    private struct State {
        var queue: [Element] = []
        var waiter: CheckedContinuation<Element?, Never>?
    }
    private let state = Mutex(State())

    func post(_ element: Element) {
        let waiter = state.withLock { s -> CheckedContinuation<Element?, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.queue.append(element)
            return nil
        }
        waiter?.resume(returning: element)
    }

    /// The next element, or nil when the calling task is cancelled.
    func next() async -> Element? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Element?, Never>) in
                let immediate: Element?? = state.withLock { s in
                    if !s.queue.isEmpty { return .some(s.queue.removeFirst()) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiter = c
                    return nil
                }
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            let w = state.withLock { s -> CheckedContinuation<Element?, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            w?.resume(returning: nil)
        }
    }
}

/// A lock for async code: holders run one at a time, in arrival order.
/// Station changes go through it so that a restore and a client's command
/// never interleave their PUTs.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func withLock<T: Sendable, E: Error>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws(E) -> T
    ) async throws(E) -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.locked {
                    s.locked = true
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
