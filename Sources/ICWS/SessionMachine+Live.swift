import Logging

/// The live session: its steps, messages, connection checks, timers, and how it ends.
extension SessionMachine {
    mutating func goLive(_ s: ICWSSession) {
        epoch &+= 1
        sessionsEstablished &+= 1
        if sessionsEstablished > 1 { status.reconnectCount &+= 1 }
        let sse: Bool
        switch configuration.messaging {
        case .auto: sse = s.featureVersion("messaging") >= 2
        case .sse: sse = true
        case .poll: sse = false
        }
        status.server = s.base.description
        status.userId = s.userId
        status.userDisplayName = s.userDisplayName
        status.messagingMode = sse ? "sse" : "poll"
        status.lastError = ""
        status.features = s.features
        status.sessionSerial = UInt64(sessionsEstablished)
        unitStates = Array(repeating: .idle, count: units.count)
        refreshSubscriptions()
        var live = Live(session: s, epoch: epoch, started: now, sse: sse, streamOpenedAt: now)
        // The restore: the units and the station, in their order.
        var steps: [(Int, Step)] = units.indices.map { (units[$0].restoreOrder, .unit($0)) }
        steps.append((SubscriptionUnit.stationRestoreOrder, .station))
        live.steps = steps.sorted { $0.0 < $1.0 }.map(\.1)
        phase = .live(live)
        setState(.connected)
        log(.info, "session established", ["icws.host": "\(s.base)", "icws.user": "\(s.userId)", "icws.messaging": "\(status.messagingMode)"])
        out.append(.openMessages(epoch, s, sse: sse))
        nextStep()
    }

    /// Every unit, in restore order (a resubscribe).
    var unitSteps: [Step] {
        units.indices.sorted { units[$0].restoreOrder < units[$1].restoreOrder }.map { .unit($0) }
    }

    /// Starts the next restore or resubscribe step when none is under way.
    mutating func nextStep() {
        guard let l = live, !l.stepBusy, let next = l.steps.first else { return }
        live?.steps.removeFirst()
        switch next {
        case .unit(let i):
            let request = units[i].request(configuration.subscriptions, l.facts)
            var unsubscribe: String?
            if case .active(let path) = unitStates[i], path != request?.path { unsubscribe = path }
            if request == nil && unsubscribe == nil {
                unitStates[i] = .idle
                return nextStep()
            }
            unitStates[i] = .pending
            live?.stepBusy = true
            out.append(.subscribe(l.epoch, l.session, unit: i, unsubscribe: unsubscribe, request: request))
        case .station:
            live?.stepBusy = true
            stationQueue.append(StationOp(ticket: ticket(), command: nil, epoch: l.epoch))
            dispatchStation()
        }
    }

    mutating func message(_ e: Epoch, _ result: Result<ICWSMessage, MessageDecodeError>) {
        guard case .live(let l) = phase, l.epoch == e else { return }
        switch result {
        case .failure(let error):
            log(.warning, "malformed message skipped", ["icws.error": "\(error)"])
            out.append(.publish(.malformedMessage(error)))
        case .success(let message):
            // A delta that shows the station gone (taken over, removed by an admin)
            // ends it here too: it names the id or the setting and gives neither.
            // A delta that names neither (only ringAlways, say) leaves them as
            // they are. Snapshots are ignored: one can arrive after a PUT already answered.
            if case .stationConnectionStateChange(let m) = message, m.isDelta, station.connected,
                station.requested?.kind != .stationless,
                m.newStationInfo.named.contains("id") || m.newStationInfo.named.contains("stationSetting"),
                (m.newStationInfo.id ?? "").isEmpty, m.newStationInfo.stationSetting ?? .none == .none
            {
                station.connected = false
                station.ready = false
                flush()
            }
            out.append(.publish(.message(message)))
            switch message {
            case .subscriptionState(let m), .queueSubscriptionState(let m):
                subscriptionState(m)
                flush()
            case .effectiveStationChange(let m):
                if m.stationId == nil {
                    if station.connected, station.requested?.kind != .stationless {
                        station.connected = false
                        station.ready = false
                        flush()
                    }
                } else {
                    out.append(.fetchStation(l.epoch, l.session))
                }
            default:
                break
            }
            if case .connectionStateChange(let m) = message, m.newConnectionState == .down {
                end(.down(reason: m.reason, shouldReconnect: m.shouldReconnect ?? false))
                flush()
            }
        }
    }

    mutating func sessionChecked(_ e: Epoch, _ result: Result<ConnectionCheck, ICWSError>) {
        guard let l = live, l.epoch == e, l.streamTimer == nil else { return }
        if let refused = l.unauthorized {
            // Down on purpose: as its message would have said. Anything else
            // (the check refused too, or an odd "up"): the 401 ends the session.
            if case .success(let check) = result, check.state == .down {
                return end(.down(reason: check.reason, shouldReconnect: check.shouldReconnect ?? false))
            }
            return end(.failed(refused))
        }
        switch result {
        case .success(let check) where check.state == .down:
            end(.down(reason: check.reason, shouldReconnect: check.shouldReconnect ?? false))
        case .success:
            // The session lives: open the stream again after a short wait. A
            // stream that ran for a while was a good one: a new outage starts.
            var retry = l.streamRetry
            if now - l.streamOpenedAt >= configuration.stableAfter { retry.reset() }
            retry.policy = configuration.backoff
            // After a wake-up the stream is reopened at once.
            let delay = l.reopenAtOnce ? .zero : retry.next(now: now, unit: draw)
            let t = ticket()
            live?.streamRetry = retry
            live?.reopenAtOnce = false
            live?.streamTimer = t
            out.append(.startTimer(t, .streamRetry, delay))
        case .failure(let error):
            // A reset can take the pooled connections with it: one more try on a new one.
            if error.kind == .transport, l.checkAttempt == 0 {
                let t = ticket()
                live?.checkAttempt = 1
                live?.streamTimer = t
                out.append(.startTimer(t, .checkRetry, .milliseconds(100)))
            } else {
                end(.failed(error))
            }
        }
    }

    mutating func timerFired(_ t: Ticket) {
        switch phase {
        case .waiting(let current) where current == t:
            status.retryIn = nil
            attempt()
        case .live(let l) where l.unitTimers[t] != nil:
            let i = l.unitTimers[t] ?? 0
            live?.unitTimers[t] = nil
            live?.steps.append(.unit(i))
            nextStep()
        case .live(let l) where l.stationTimer == t:
            live?.stationTimer = nil
            if l.stationRetryFetches {
                live?.stationRetryFetches = false
                out.append(.fetchStation(l.epoch, l.session))
            } else {
                live?.steps.append(.station)
            }
            nextStep()
        case .live(let l) where l.streamTimer == t:
            live?.streamTimer = nil
            if l.checkAttempt == 1 {
                live?.checkAttempt = 2
                out.append(.checkSession(l.epoch, l.session))
            } else {
                live?.resync = true
                let openedAt = now
                live?.streamOpenedAt = openedAt
                out.append(.openMessages(l.epoch, l.session, sse: l.sse))
            }
        default:
            return
        }
    }

    /// A 401 or transport failure on a call means the session is gone: true
    /// when it ended it (or, for a 401, is finding out why).
    mutating func sessionFailed(_ error: ICWSError, epoch e: Epoch) -> Bool {
        guard case .live(let l) = phase, l.epoch == e, error.status == 401 || error.kind == .transport else { return false }
        if error.status == 401 {
            unauthorized(error, epoch: e)
        } else {
            end(.failed(error))
        }
        return true
    }

    /// A 401 in a live session: one `GET connection` first. A server that took
    /// the session down (an administrator's logoff, `shouldReconnect` absent)
    /// says so there, and its message may sit in a stream not read yet (the
    /// restore's requests come first); a new login would undo the logoff.
    /// Otherwise the 401 ends the session as before (challenge and all).
    mutating func unauthorized(_ error: ICWSError, epoch e: Epoch) {
        guard let l = live, l.epoch == e, l.unauthorized == nil else { return }
        live?.unauthorized = error
        // The server no longer has the session, whatever the check says.
        station.connected = false
        if let t = l.streamTimer {
            out.append(.cancelTimer(t))
            live?.streamTimer = nil
        }
        out.append(.checkSession(e, l.session))
    }

    /// Ends the live session and decides what comes next.
    mutating func end(_ end: SessionEnd) {
        guard case .live(let l) = phase else { return }
        let s = l.session
        out.append(.endSessionWork(l.epoch))
        if let t = l.streamTimer { out.append(.cancelTimer(t)) }
        let stable = now - l.started >= configuration.stableAfter
        if stable { retry.reset() }
        station.connected = false
        for i in unitStates.indices { unitStates[i] = .idle }
        for t in l.unitTimers.keys { out.append(.cancelTimer(t)) }
        if let t = l.stationTimer { out.append(.cancelTimer(t)) }
        refreshSubscriptions()
        phase = .stopped
        flush()
        switch end {
        case .reconnect:
            setState(.reconnecting)
            retry.reset()
            let t = ticket()
            phase = .loggingOut(t, then: .login)
            out.append(.logout(s, t))
        case .disconnect:
            setState(.stopped)
            let t = ticket()
            phase = .loggingOut(t, then: .stop)
            out.append(.logout(s, t))
        case .down(let reason, let shouldReconnect):
            status.lastError = reason.isEmpty ? "session down" : reason
            log(.warning, "session down", ["icws.reason": "\(reason)", "icws.should_reconnect": "\(shouldReconnect)"])
            if shouldReconnect { backoff(reason: status.lastError, busy: .wentDown) } else { stop() }
        case .failed(let error):
            status.lastError = error.shortReason
            if error.status == 401 {
                let target = error.challenge?.loginBase(relativeTo: s.base) ?? s.base
                if let refusal = configuration.locationPolicy.refusal(of: target, from: s.base) {
                    // The password never follows the server to plain http.
                    status.lastError = refusal
                    preferredBase = nil
                    log(.error, "401 challenge refused", ["icws.error": "\(refusal)"])
                    return backoff(reason: refusal)
                }
                preferredBase = target
                log(.info, "session no longer valid; logging in again", ["icws.host": "\(target)"])
                // The first login after a stable session is at once; a 401 loop backs off.
                if stable { attempt() } else { backoff(reason: error.shortReason) }
            } else {
                log(.warning, "session lost", ["icws.error": "\(error)"])
                // Cut off by the network: ask for it again first when it is back.
                // Any other failure: it may still live on the server, so log it out.
                if error.kind == .transport || error.kind == .timeout { resumable = s } else { out.append(.logout(s, nil)) }
                backoff(reason: error.shortReason)
            }
        }
    }

    /// Why the server is busy, for the wait before the next login.
    enum Busy {
        /// It took the session down with `shouldReconnect`.
        case wentDown
        /// It answered the login with 503 (and maybe a `Retry-After`).
        case refused(retryAfter: Duration?)
    }

    mutating func backoff(reason: String, busy: Busy? = nil) {
        retry.policy = configuration.backoff
        let delay: Duration
        switch busy {
        case nil: delay = retry.next(now: now, unit: draw)
        case .wentDown: delay = retry.nextBusy(now: now, unit: draw, retryAfter: nil, serverWentDown: true)
        case .refused(let retryAfter): delay = retry.nextBusy(now: now, unit: draw, retryAfter: retryAfter)
        }
        status.retryIn = delay
        setState(.reconnecting)
        log(.info, "retrying", ["icws.retry_in_ms": "\(Int(delay.seconds * 1000))", "icws.reason": "\(reason)"])
        let t = ticket()
        phase = .waiting(t)
        out.append(.startTimer(t, .backoff, delay))
    }

    mutating func stop() {
        phase = .stopped
        setState(.stopped)
    }

    mutating func completeDisconnects() {
        for t in pendingDisconnects { out.append(.completeDisconnect(t)) }
        pendingDisconnects = []
    }

    /// A new session was asked for: the cut-off one is logged out in the background.
    mutating func discardResumable() {
        guard let cutOff = resumable else { return }
        resumable = nil
        out.append(.logout(cutOff, nil))
    }

    mutating func shutdown() {
        switch phase {
        case .finishing, .finished: return
        default: break
        }
        var toLogOut: [ICWSSession] = []
        switch phase {
        case .live(let l):
            out.append(.endSessionWork(l.epoch))
            if let t = l.streamTimer { out.append(.cancelTimer(t)) }
            toLogOut.append(l.session)
        case .waiting(let t):
            out.append(.cancelTimer(t))
        default: break
        }
        if let r = resumable { toLogOut.append(r) }
        resumable = nil
        station.connected = false
        setState(.stopped)
        completeDisconnects()
        for op in stationQueue {
            if op.command != nil {
                out.append(.replyStation(op.ticket, .failure(.icws(ICWSError(kind: .notConnected, message: "the bridge is stopping")))))
            }
        }
        stationQueue = []
        // The answer of the operation under way would come too late to be waited for.
        if let op = stationBusy, op.command != nil {
            out.append(.replyStation(op.ticket, .failure(.icws(ICWSError(kind: .notConnected, message: "the bridge is stopping")))))
        }
        stationBusy = nil
        if !configuration.logoutOnStop { toLogOut = [] }
        if toLogOut.isEmpty {
            phase = .finished
            setState(.stopped)
            flush()
            out.append(.finished)
        } else {
            phase = .finishing(outstanding: toLogOut.count)
            for s in toLogOut { out.append(.logout(s, ticket())) }
        }
    }
}
