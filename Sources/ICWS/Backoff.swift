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

    public init(
        initial: Duration = .seconds(1), cap: Duration = .seconds(60), floor: Duration = .milliseconds(100),
        growth: Double = 0.5
    ) {
        self.initial = initial
        self.cap = cap
        self.floor = floor
        self.growth = growth
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
