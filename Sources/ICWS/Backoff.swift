/// Backoff with full jitter whose ceiling follows how long the outage has
/// lasted: the wait before the next attempt is a uniform draw in
/// [floor, ceiling) with ceiling = min(cap, max(initial, elapsed × growth)).
///
/// Tying the ceiling to the outage's age rather than to the attempt count
/// keeps the two properties that matter: the daemon tries again within
/// max(initial, growth × T) of a server coming back after an outage of T
/// (with the defaults, a 2 s outage is over for the daemon within 1 s), and
/// each wait extends the outage by a factor of at most 1 + growth, so the
/// attempts grow with the logarithm of T up to the cap (exponential backoff)
/// and a fleet of clients spreads its attempts over the whole window.
public struct BackoffPolicy: Sendable, Equatable {
    public var initial: Duration
    public var cap: Duration
    public var floor: Duration
    /// The ceiling as a fraction of the time the outage has lasted.
    public var growth: Double
    /// The smallest ceiling while the server says it is busy: a 503 at
    /// login, or a session taken down with `shouldReconnect` (a restart, a
    /// switchover). Every daemon of a site hears it at the same moment, so
    /// the waits start wide (see `busyDelay` and `firstBusyDelay`).
    public var busyInitial: Duration
    /// The shortest wait after a 503.
    public static let busyFloor: Duration = .seconds(1)

    public init(
        initial: Duration = .seconds(1), cap: Duration = .seconds(60), floor: Duration = .milliseconds(100),
        growth: Double = 0.5, busyInitial: Duration = .seconds(10)
    ) {
        self.initial = initial
        self.cap = cap
        self.floor = floor
        self.growth = growth
        self.busyInitial = busyInitial
    }

    /// The ceiling of the next wait, `elapsed` into an outage, before jitter.
    public func ceiling(elapsed: Duration) -> Duration {
        let proportional = max(elapsed, .zero).seconds * max(growth, 0)
        let seconds = min(max(initial.seconds, proportional), cap.seconds)
        return .milliseconds(Int64(seconds * 1000))
    }

    /// The next wait, `elapsed` into an outage, given a uniform draw `unit` in [0, 1).
    public func delay(elapsed: Duration, unit: Double) -> Duration {
        let ceiling = ceiling(elapsed: elapsed)
        let u = min(max(unit, 0), 1)
        let ms = Int64((ceiling.seconds * 1000 * u).rounded(.down))
        return max(.milliseconds(ms), min(floor, ceiling))
    }

    /// The bounds of a wait while the server is busy, `elapsed` into the
    /// outage: up to the larger of `busyInitial` and the outage's share,
    /// capped by `cap` (the cap wins over `busyInitial`); from 30 % of that
    /// ceiling, at least `busyFloor` and at most 3 s. With the defaults that
    /// is 3 to 10 s: a fleet of N daemons tries about N / 6.5 times a second
    /// and each is back within 10 s of the server's return (see
    /// `scripts/fleet`).
    public func busyRange(elapsed: Duration) -> (low: Double, high: Double) {
        let proportional = max(elapsed, .zero).seconds * max(growth, 0)
        let ceiling = min(max(busyInitial.seconds, proportional), cap.seconds)
        let low = max(Self.busyFloor.seconds, min(3, ceiling * 0.3))
        return (low, max(ceiling, low))
    }

    /// The wait after a 503: a uniform draw over `busyRange` (full jitter
    /// above the floor), or the server's `Retry-After` plus a draw over up
    /// to half of it (at least 1 s), so that a fleet told the same moment
    /// does not come back in the same second.
    public func busyDelay(elapsed: Duration, unit: Double, retryAfter: Duration?) -> Duration {
        let u = min(max(unit, 0), 1)
        if let retryAfter {
            let spread = max(retryAfter.seconds / 2, 1)
            return .milliseconds(Int64((retryAfter.seconds + spread * u) * 1000))
        }
        let (low, high) = busyRange(elapsed: elapsed)
        return .milliseconds(Int64((low + (high - low) * u) * 1000))
    }

    /// The first wait after the server took the session down with
    /// `shouldReconnect`. Drawn from the equilibrium (residual) distribution
    /// of `busyDelay`'s waits: density 1/E[X] up to the floor, then falling
    /// linearly to zero at the ceiling. A fleet of daemons that hears "down"
    /// at the same moment then tries at the steady rate of N / E[X] from the
    /// first second on, instead of all at once and in waves after.
    public func firstBusyDelay(unit: Double) -> Duration {
        let u = min(max(unit, 0), 1)
        let (a, b) = busyRange(elapsed: .zero)
        let mean = (a + b) / 2
        let flatShare = a / mean
        let seconds: Double
        if u < flatShare {
            seconds = a * (u / flatShare)
        } else {
            // The falling part, by inversion: t = b - (b - a)·sqrt(v), v uniform in [0, 1].
            let v = (u - flatShare) / (1 - flatShare)
            seconds = b - (b - a) * v.squareRoot()
        }
        return .milliseconds(Int64(seconds * 1000))
    }
}

/// The backoff of one kind of retry: remembers when the outage began.
public struct Backoff: Sendable {
    public var policy: BackoffPolicy
    public private(set) var outageStart: Duration?

    public init(policy: BackoffPolicy) { self.policy = policy }

    /// The wait before the next attempt; the first call starts the outage.
    public mutating func next(now: Duration, unit: Double) -> Duration {
        let start = outageStart ?? now
        outageStart = start
        return policy.delay(elapsed: now - start, unit: unit)
    }

    /// The wait before the next attempt while the server says it is busy
    /// (`BackoffPolicy.busyDelay`, or `firstBusyDelay` when `serverWentDown`
    /// starts the outage); the first call starts the outage.
    public mutating func nextBusy(now: Duration, unit: Double, retryAfter: Duration?, serverWentDown: Bool = false) -> Duration {
        let start = outageStart ?? now
        outageStart = start
        if serverWentDown, retryAfter == nil { return policy.firstBusyDelay(unit: unit) }
        return policy.busyDelay(elapsed: now - start, unit: unit, retryAfter: retryAfter)
    }

    /// The outage is over (a stable session, or a client asked for a new one).
    public mutating func reset() { outageStart = nil }
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
    public func sleep(for duration: Duration) async throws { try await loopSleep(for: duration) }
}
