import Logging

/// The subscriptions as units: their states as the server reports them, and their retries.
extension SessionMachine {
    /// A unit named by a subscription state message: by the last part of its
    /// path (the subscription id ICWS reports), or its whole path.
    func unitIndex(subscriptionId id: String) -> Int? {
        guard !id.isEmpty else { return nil }
        return unitStates.indices.first { i in
            guard let path = unitStates[i].path else { return false }
            return path == id || path.hasSuffix("/" + id) || path.split(separator: "/").last.map(String.init) == id
        }
    }

    /// `subscriptionStateMessage` / `queueSubscriptionStateMessage`.
    mutating func subscriptionState(_ m: SubscriptionStateMessage) {
        guard live != nil else { return }
        guard let i = unitIndex(subscriptionId: m.subscriptionId ?? ""), let path = unitStates[i].path else {
            log(.warning, "subscription state for no known subscription", ["icws.subscription": "\(m.subscriptionId ?? "")", "icws.state": "\(m.state)"])
            return
        }
        switch m.state {
        case .normal:
            unitStates[i] = .active(path: path)
            live?.unitRetry[i] = nil
        case .suspended:
            unitStates[i] = .suspended(path: path)
            log(.warning, "subscription suspended by the server", ["icws.subscription": "\(units[i].name)", "icws.error": "\(m.error?.serverText ?? "")"])
        case .faulted:
            unitStates[i] = .faulted(path: path)
            if let error = m.error { status.lastError = error.shortReason }
            log(.warning, "subscription faulted; making it again", ["icws.subscription": "\(units[i].name)", "icws.error": "\(m.error?.serverText ?? "")"])
            scheduleUnitRetry(i)
            refreshSubscriptions()
            flush()
            return
        default:
            return
        }
        refreshSubscriptions()
    }

    /// A unit that faulted or whose request failed is made again after its
    /// own backoff, as often as it takes, until it succeeds or the session
    /// ends (which cancels the timer). One timer a unit at a time.
    mutating func scheduleUnitRetry(_ i: Int) {
        guard let l = live, !l.unitTimers.values.contains(i) else { return }
        var b = l.unitRetry[i] ?? Backoff(policy: configuration.backoff)
        if let made = l.unitMadeAt[i], now - made >= configuration.stableAfter { b.reset() }
        b.policy = configuration.backoff
        let delay = b.next(now: now, unit: draw)
        let t = ticket()
        live?.unitRetry[i] = b
        live?.unitTimers[t] = i
        out.append(.startTimer(t, .resubscribe, delay))
    }

    /// The station restore (or a re-read of its information) failed without
    /// ending the session: tried again after the station's backoff, until it
    /// succeeds, the session ends, or a command changes the station.
    mutating func scheduleStationRetry(fetch: Bool) {
        guard let l = live else { return }
        if fetch { live?.stationRetryFetches = true }
        guard l.stationTimer == nil else { return }
        var retry = l.stationRetry
        retry.policy = configuration.backoff
        let delay = retry.next(now: now, unit: draw)
        let t = ticket()
        live?.stationRetry = retry
        live?.stationTimer = t
        out.append(.startTimer(t, .stationRetry, delay))
    }

    mutating func refreshSubscriptions() {
        var map: [String: UInt32] = [:]
        for (u, s) in zip(units, unitStates) { map[u.name] = s.health.rawValue }
        status.subscriptions = map
    }
}
