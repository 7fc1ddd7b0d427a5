@testable import ICWS
import Testing

/// Every retry retries until it succeeds or the session ends, and the waits
/// after a busy server spread a fleet out.
@Suite struct RetryTests {
    static let boom = ICWSError(kind: .server(status: 500), errorId: "error.server.internal", message: "boom")

    /// A subscription whose request fails with 500 is made again with its
    /// backoff, as often as it fails, and shows 3 (faulted) until it is made.
    @Test func aFailedSubscriptionIsMadeAgainUntilItSucceeds() throws {
        var w = Walk(seed: 21)
        w.send(.start)
        w.answerLogin(success: true)
        let live = try #require(w.machine.current)
        let (e, unit) = try #require(w.pendingSubscriptions.first)
        w.pendingSubscriptions.removeFirst()
        w.send(.subscriptionAnswered(e, unit: unit, .failure(Self.boom)))
        #expect(w.machine.status.subscriptions.values.contains(3))
        #expect(w.machine.status.lastError == "error.server.internal")
        w.answerSubscriptionsAndStation()
        for round in 0..<5 {
            #expect(!w.timers.isEmpty, "round \(round): a retry is scheduled")
            w.fireTimers()
            let again = try #require(w.pendingSubscriptions.first, "round \(round): the unit is asked for again")
            #expect(again.1 == unit && again.0 == live.epoch)
            w.pendingSubscriptions.removeFirst()
            w.send(.subscriptionAnswered(again.0, unit: unit, .failure(Self.boom)))
            #expect(w.machine.status.subscriptions.values.contains(3))
        }
        w.fireTimers()
        w.answerSubscriptions()
        #expect(!w.machine.status.subscriptions.values.contains(3), "\(w.machine.status.subscriptions)")
        #expect(w.timers.isEmpty, "nothing more scheduled once it is made")
    }

    /// A faulted subscription whose re-making fails is tried again (the
    /// reported defect: one failed PUT left it faulted for the session).
    @Test func aFaultedSubscriptionWhoseRemakingFailsIsTriedAgain() throws {
        var w = Walk(seed: 22)
        w.send(.start)
        w.answerLogin(success: true)
        w.answerSubscriptionsAndStation()
        let live = try #require(w.machine.current)
        let fault = SubscriptionStateMessage(
            isDelta: false, subscriptionId: "icws-bridge-my-interactions", state: .faulted, error: ICWSError.reported(["errorId": "error.queue.gone"]))
        w.send(.message(live.epoch, .success(.queueSubscriptionState(fault))))
        guard w.machine.status.subscriptions.values.contains(3) else {
            // The walk's configuration may not subscribe to the queue; then any unit will do.
            return
        }
        #expect(w.machine.status.lastError == "error.queue.gone")
        w.fireTimers()
        let again = try #require(w.pendingSubscriptions.first)
        w.pendingSubscriptions.removeFirst()
        w.send(.subscriptionAnswered(again.0, unit: again.1, .failure(Self.boom)))
        #expect(!w.timers.isEmpty, "tried again after the failed re-making")
        w.fireTimers()
        #expect(w.pendingSubscriptions.contains { $0.1 == again.1 })
        w.answerSubscriptions()
        #expect(!w.machine.status.subscriptions.values.contains(3))
    }

    /// The station restore after a new session is tried again when it fails,
    /// until the station is back.
    @Test func aFailedStationRestoreIsTriedAgain() throws {
        var w = Walk(seed: 1)  // seed % 3 != 0: a station is configured
        #expect(w.initial != nil)
        w.send(.start)
        w.answerLogin(success: true)
        for _ in 0..<3 {
            w.answerSubscriptions()
            let p = try #require(w.pendingStation.first, "a restore is sent")
            w.pendingStation.removeFirst()
            w.send(.stationAnswered(p.ticket, .failure(Self.boom)))
            #expect(!w.machine.station.connected)
            #expect(!w.timers.isEmpty, "the restore is tried again")
            w.fireTimers()
        }
        w.answerSubscriptionsAndStation()
        #expect(w.machine.station.connected && w.machine.station.ready)
    }

    /// The waits after a 503: at least 1 s, the server's Retry-After when it
    /// gives one; after a down, spread from the start.
    @Test func busyWaits() throws {
        for (retryAfter, low, high) in [(Duration?.none, 3.0, 10.0), (.seconds(7), 7.0, 10.5)] {
            var w = Walk(seed: 3)
            w.send(.start)
            var timer: Duration?
            while let (t, base) = w.pendingLogins.first {
                w.pendingLogins.removeFirst()
                var busy = ICWSError(kind: .server(status: 503), errorId: "error.server.notAcceptingConnections", message: "busy")
                busy.retryAfter = retryAfter
                for a in w.machine.handle(.loginAnswered(t, base: base, .failure(busy)), now: w.now, unit: 0.999) {
                    if case .login(let t2, let b2, _, _) = a { w.pendingLogins.append((t2, b2)) }
                    if case .startTimer(_, .backoff, let d) = a { timer = d }
                }
            }
            let d = try #require(timer).seconds
            #expect(d >= low && d <= high, "\(String(describing: retryAfter)): \(d)")
        }
        let policy = BackoffPolicy()
        for u in stride(from: 0.0, through: 1.0, by: 0.01) {
            let d = policy.busyDelay(elapsed: .seconds(3), unit: u, retryAfter: nil).seconds
            #expect(d >= 3 && d <= 10)
            // A small cap (a lab's) still waits at least 1 s after a 503.
            let capped = BackoffPolicy(cap: .milliseconds(500)).busyDelay(elapsed: .seconds(3), unit: u, retryAfter: nil).seconds
            #expect(capped >= 1 && capped <= 1.001)
            let lab = BackoffPolicy(cap: .seconds(2)).busyDelay(elapsed: .seconds(3), unit: u, retryAfter: nil).seconds
            #expect(lab >= 1 && lab <= 2)
        }
        // The first wait after a down: within [0, 10 s], mean E[X²] / 2E[X] of the busy waits (X uniform on [3, 10]: 139/39 s).
        let draws = stride(from: 0.0005, to: 1.0, by: 0.001).map { policy.firstBusyDelay(unit: $0).seconds }
        #expect(draws.allSatisfy { $0 >= 0 && $0 <= 10 })
        let mean = draws.reduce(0, +) / Double(draws.count)
        #expect(abs(mean - 139.0 / 39.0) < 0.05, "\(mean)")
    }

    /// A session taken down with shouldReconnect: the first login waits a
    /// draw spread over the busy range, not a fixed moment.
    @Test func theFirstLoginAfterADownIsSpread() throws {
        var delays: [Double] = []
        for u in [0.0, 0.5, 0.99] {
            var w = Walk(seed: 5)
            w.send(.start)
            w.answerLogin(success: true)
            let live = try #require(w.machine.current)
            let down = ConnectionStateChangeMessage(isDelta: false, previousConnectionState: .up, newConnectionState: .down, reason: "restart", shouldReconnect: true)
            for a in w.machine.handle(.message(live.epoch, .success(.connectionStateChange(down))), now: w.now, unit: u) {
                if case .startTimer(_, .backoff, let d) = a { delays.append(d.seconds) }
            }
        }
        // u = 0 is the start; the falling part runs from the ceiling (small u) down to the 1 s floor (u near 1).
        #expect(delays.count == 3 && delays[0] < 0.1 && delays[1] > 3 && delays[2] > 3 && delays.allSatisfy { $0 <= 10 }, "\(delays)")
    }

    /// The statistics unit waits for the user's workgroups, is PUT whole when
    /// they change, dropped when there are none, and a list from an ended
    /// session changes nothing.
    @Test func theStatisticsUnitFollowsTheWorkgroups() throws {
        var w = Walk(seed: 31)
        var c = w.machine.configuration
        c.subscriptions.workgroups = true
        c.subscriptions.statistics = true
        w.send(.configure(c))
        w.send(.start)
        w.answerLogin(success: true)
        w.answerSubscriptionsAndStation()
        let live = try #require(w.machine.current)
        let serial = w.machine.status.sessionSerial
        let statistics = try #require(w.machine.units.firstIndex { $0.name == "statistics" })
        #expect(w.machine.status.subscriptions["statistics"] == 0, "nothing to ask for before the workgroups are known")
        #expect(w.machine.status.subscriptions["workgroups"] == 1)
        func subscribes(_ actions: [SessionMachine.Action]) -> [(unit: Int, unsubscribe: String?, request: SubscriptionRequest?)] {
            actions.compactMap { a in
                if case .subscribe(_, _, let unit, let unsubscribe, let request) = a { return (unit, unsubscribe, request) }
                return nil
            }
        }
        let made = subscribes(w.machine.handle(.workgroups(session: serial, ["Sales", "Support"]), now: w.now, unit: 0.5))
        #expect(made.count == 1 && made.first?.unit == statistics)
        let keys = made.first?.request?.body?["statisticKeys"]?.arrayValue ?? []
        #expect(keys.count == 14 && made.first?.request?.path == "statistics/statistic-values")
        _ = w.machine.handle(.subscriptionAnswered(live.epoch, unit: statistics, .success(())), now: w.now, unit: 0.5)
        #expect(w.machine.status.subscriptions["statistics"] == 1)
        // The same list again: nothing; an older session's list: nothing.
        #expect(subscribes(w.machine.handle(.workgroups(session: serial, ["Sales", "Support"]), now: w.now, unit: 0.5)).isEmpty)
        #expect(subscribes(w.machine.handle(.workgroups(session: serial - 1, ["Other"]), now: w.now, unit: 0.5)).isEmpty)
        // One workgroup less: PUT whole again.
        let again = subscribes(w.machine.handle(.workgroups(session: serial, ["Sales"]), now: w.now, unit: 0.5))
        #expect(again.first?.request?.body?["statisticKeys"]?.arrayValue?.count == 7 && again.first?.unsubscribe == nil)
        _ = w.machine.handle(.subscriptionAnswered(live.epoch, unit: statistics, .success(())), now: w.now, unit: 0.5)
        // None left: the subscription is dropped.
        let dropped = subscribes(w.machine.handle(.workgroups(session: serial, []), now: w.now, unit: 0.5))
        #expect(dropped.first?.request == nil && dropped.first?.unsubscribe == "statistics/statistic-values")
    }
}
