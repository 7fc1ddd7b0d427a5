import ICWS
import Testing

@Suite struct BackoffTests {
    let policy = BackoffPolicy(initial: .seconds(1), cap: .seconds(60), floor: .milliseconds(100))

    @Test func ceilingFollowsTheOutageAgeUpToTheCap() {
        let ages: [Duration] = [.zero, .seconds(1), .seconds(2), .seconds(4), .seconds(10), .seconds(100), .seconds(120), .seconds(100_000)]
        #expect(ages.map { policy.ceiling(elapsed: $0) } == [1, 1, 1, 2, 5, 50, 60, 60].map { Duration.seconds($0) })
        #expect(policy.ceiling(elapsed: .seconds(-5)) == .seconds(1))
    }

    @Test func fullJitterStaysInRange() {
        for age in [0, 1, 3, 7, 30, 200, 5000] {
            let elapsed = Duration.seconds(age)
            for u in stride(from: 0.0, to: 1.0, by: 0.05) {
                let d = policy.delay(elapsed: elapsed, unit: u)
                #expect(d >= .milliseconds(100) && d <= policy.ceiling(elapsed: elapsed))
            }
        }
        #expect(policy.delay(elapsed: .seconds(8), unit: 0.5) == .seconds(2))
        #expect(policy.delay(elapsed: .seconds(8), unit: 0) == .milliseconds(100))
        #expect(policy.delay(elapsed: .seconds(10_000), unit: 0.999) <= .seconds(60))
        // Out-of-range draws are clamped.
        #expect(policy.delay(elapsed: .seconds(8), unit: 7) == .seconds(4))
        #expect(policy.delay(elapsed: .seconds(8), unit: -1) == .milliseconds(100))
    }

    @Test func outageClockStartsAtTheFirstWaitAndResets() {
        var b = Backoff(policy: policy)
        #expect(b.outageStart == nil)
        #expect(b.next(now: .seconds(100), unit: 0.999) < .seconds(1))
        #expect(b.outageStart == .seconds(100))
        // 40 s into the outage the ceiling is 20 s.
        #expect(b.next(now: .seconds(140), unit: 0.5) == .seconds(10))
        b.reset()
        #expect(b.outageStart == nil)
        #expect(b.next(now: .seconds(500), unit: 0.5) == .milliseconds(500))
    }

    /// Attempts made by one client through an outage of `length` (failing
    /// while the outage lasts), with seeded draws: when the first attempt
    /// after the end came, and how many attempts there were.
    func walk(_ length: Duration, seed: UInt64) -> (late: Duration, attempts: Int) {
        var rng = SplitMix64(seed: seed)
        var b = Backoff(policy: policy)
        var now = Duration.zero
        var attempts = 1
        while now < length {
            now += b.next(now: now, unit: Double.random(in: 0..<1, using: &rng))
            attempts += 1
        }
        return (now - length, attempts)
    }

    @Test func serverBackAfterAnOutageIsSeenWithinHalfItsLength() {
        for length in [1, 2, 5, 30, 100, 3600].map({ Duration.seconds($0) }) {
            for seed in UInt64(1)...200 {
                let late = walk(length, seed: seed).late
                #expect(late <= max(policy.initial, min(policy.cap, length * 0.5)), "outage \(length), seed \(seed)")
            }
        }
    }

    @Test func attemptsGrowLikeTheLogarithmOfTheOutageUntilTheCap() {
        func mean(_ length: Duration) -> Double {
            Double((UInt64(1)...200).map { walk(length, seed: $0).attempts }.reduce(0, +)) / 200
        }
        let two = mean(.seconds(2)), minute = mean(.seconds(60)), hour = mean(.seconds(3600))
        #expect(two >= 2 && two <= 8, "2 s: \(two)")
        #expect(minute <= 30, "1 min: \(minute)")
        // At the cap the waits average 30 s: about 120 attempts an hour, plus the ramp.
        #expect(hour <= 160, "1 h: \(hour)")
    }
}
