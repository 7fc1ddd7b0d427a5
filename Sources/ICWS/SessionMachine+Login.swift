import Logging

/// Logging in: rounds over the servers, the answers, resuming a session cut off by the network, logging out.
extension SessionMachine {
    /// The next attempt: the cut-off session if there is one, else a login round.
    mutating func attempt() {
        pendingReload = false
        setState(sessionsEstablished == 0 ? .connecting : .reconnecting)
        if let old = resumable {
            let t = ticket()
            phase = .resuming(t)
            out.append(.checkResumable(t, old))
        } else {
            loginRound()
        }
    }

    /// One round over the candidate hosts: the preferred (challenge or last
    /// good) host, the configured servers, alternates learned at login and from 503s.
    mutating func loginRound() {
        var candidates: [ServerURL] = []
        if let preferredBase { Self.add(preferredBase, to: &candidates) }
        for u in configuration.servers { Self.add(u, to: &candidates) }
        for u in learnedAlternates { Self.add(u, to: &candidates) }
        login(candidates: candidates, index: 0, lastError: ICWSError(kind: .notConnected, message: "no server configured"))
    }

    /// Bounded: a chain of 503s that keeps naming new hosts ends the round.
    static func add(_ u: ServerURL, to candidates: inout [ServerURL]) {
        if candidates.count < 24, !candidates.contains(u) { candidates.append(u) }
    }

    mutating func login(candidates: [ServerURL], index: Int, lastError: ICWSError) {
        guard index < candidates.count else { return roundFailed(lastError) }
        let t = ticket()
        phase = .loggingIn(t, candidates: candidates, index: index)
        status.server = candidates[index].description
        out.append(.login(t, base: candidates[index], userId: configuration.userId, password: configuration.password))
    }

    mutating func loginAnswered(
        _ t: Ticket, base: ServerURL, _ result: Result<ICWSSession, ICWSError>
    ) {
        guard case .loggingIn(let current, var candidates, let index) = phase, current == t else {
            // An answer nobody waits for any more: its session must not be left on the server.
            if case .success(let s) = result { out.append(.logout(s, nil)) }
            return
        }
        if !pendingDisconnects.isEmpty {
            if case .success(let s) = result {
                let lt = ticket()
                phase = .loggingOut(lt, then: .stop)
                out.append(.logout(s, lt))
            } else {
                completeDisconnects()
                stop()
            }
            return
        }
        if pendingReload {
            if case .success(let s) = result { out.append(.logout(s, nil)) }
            return attempt()
        }
        switch result {
        case .success(let s):
            preferredBase = base
            learnedAlternates = alternates(s.alternateHosts, of: base)
            // The old session could not be reached and a new one is up: the old
            // one is logged out in the background (its host may be gone).
            discardResumable()
            goLive(s)
        case .failure(let error):
            if error.status == 503 {
                for u in alternates(error.alternateHosts, of: base) { Self.add(u, to: &candidates) }
                return login(candidates: candidates, index: index + 1, lastError: error)
            }
            if Self.credentialsRejected(error) { return roundFailed(error) }
            login(candidates: candidates, index: index + 1, lastError: error)
        }
    }

    mutating func roundFailed(_ error: ICWSError) {
        status.lastError = error.shortReason
        if Self.credentialsRejected(error) {
            log(.error, "login refused; waiting for Reconnect() or a reload", ["icws.error": "\(error)"])
            return stop()
        }
        log(.warning, "login failed", ["icws.error": "\(error)"])
        // A 503 says the server is busy (starting, switching over): it is
        // told to every daemon of a site at once, so the fleet waits wider.
        backoff(reason: error.shortReason, busy: error.status == 503 ? .refused(retryAfter: error.retryAfter) : nil)
    }

    mutating func resumeAnswered(_ t: Ticket, _ result: Result<ConnectionCheck, ICWSError>) {
        guard case .resuming(let current) = phase, current == t else { return }
        if !pendingDisconnects.isEmpty {
            guard let old = resumable else {
                completeDisconnects()
                return stop()
            }
            resumable = nil
            let lt = ticket()
            phase = .loggingOut(lt, then: .stop)
            out.append(.logout(old, lt))
            return
        }
        if pendingReload {
            discardResumable()
            return attempt()
        }
        // A reload dropped the cut-off session meanwhile: log in.
        guard let old = resumable else { return loginRound() }
        switch result {
        case .success(let check) where check.state == .up:
            resumable = nil
            log(.info, "the network is back and the session still lives; resuming it", ["icws.host": "\(old.base)"])
            goLive(old)
        case .success:
            resumable = nil
            attempt()
        case .failure(let error):
            // Still out of reach: log in (walking the alternates); if that fails
            // too, the next attempt asks again. Any other answer: it is gone.
            if error.kind != .transport && error.kind != .timeout { resumable = nil }
            loginRound()
        }
    }

    mutating func loggedOut(_ t: Ticket) {
        switch phase {
        case .loggingOut(let current, let then) where current == t:
            status.lastError = ""
            completeDisconnects()
            if then == .login {
                retry.reset()
                attempt()
            } else {
                stop()
            }
        case .finishing(let n):
            if n <= 1 {
                phase = .finished
                setState(.stopped)
                flush()
                out.append(.finished)
            } else {
                phase = .finishing(outstanding: n - 1)
            }
        default:
            return
        }
    }
}
