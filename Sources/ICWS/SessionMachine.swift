import Logging

/// The session core as a plain value: events go in, actions come out.
///
/// It holds no I/O, no clock and no tasks. `SessionSupervisor` performs the
/// actions (HTTP requests, timers, bus events) and feeds their answers back
/// as events, each with the time it happened and a uniform random draw for
/// the backoff's jitter. `SessionMachineTests` drives it through thousands of
/// seeded random event sequences and checks its invariants:
/// - at most one live session;
/// - a restore never undoes a newer station command;
/// - nothing that belongs to an ended session acts.
///
/// Every live session has an `epoch`. Work started for a session (the
/// message stream, subscriptions, the station restore, checks) carries it,
/// and an answer whose epoch is not the live one changes nothing.
public struct SessionMachine: Sendable {
    public typealias Epoch = UInt64
    /// Identifies one request (a login, a logout, a station command, a timer).
    public typealias Ticket = UInt64

    public enum StationCommand: Sendable, Equatable {
        case connect(StationSettings)
        case disconnect
        case setReady(Bool)
    }

    /// The answer of `GET /connection`.
    public struct ConnectionCheck: Sendable, Equatable {
        public var state: ConnectionState
        public var reason: String
        public var shouldReconnect: Bool?
        public init(state: ConnectionState, reason: String = "", shouldReconnect: Bool? = nil) {
            self.state = state
            self.reason = reason
            self.shouldReconnect = shouldReconnect
        }
    }

    public enum TimerKind: Sendable, Equatable {
        /// The wait before the next login attempt.
        case backoff
        /// The wait before the message stream is opened again.
        case streamRetry
        /// A short pause before the connection check is tried on a new connection.
        case checkRetry
        /// The wait before a faulted or failed subscription is made again.
        case resubscribe
        /// The wait before a station restore (or re-read) that failed is tried again.
        case stationRetry
    }

    public enum Event: Sendable {
        case start
        case configure(SupervisorConfiguration)
        /// A new session: `coalesce` requests (from callers) share a login under way.
        case reconnect(coalesce: Bool)
        case disconnect(Ticket)
        case stationCommand(Ticket, StationCommand)
        case loginAnswered(Ticket, base: ServerURL, Result<ICWSSession, ICWSError>)
        case resumeAnswered(Ticket, Result<ConnectionCheck, ICWSError>)
        case loggedOut(Ticket)
        /// The first bytes (or the first poll answer) of a message stream arrived.
        case streamOpened(Epoch)
        case message(Epoch, Result<ICWSMessage, MessageDecodeError>)
        /// The stream ended: cleanly (nil) or with an error.
        case streamEnded(Epoch, ICWSError?)
        case sessionChecked(Epoch, Result<ConnectionCheck, ICWSError>)
        case subscriptionAnswered(Epoch, unit: Int, Result<Void, ICWSError>)
        case stationAnswered(Ticket, Result<Void, ICWSError>)
        /// A request on the session (made outside the machine) failed.
        case requestFailed(Epoch, ICWSError)
        case timerFired(Ticket)
        /// The daemon stops: log out when configured and finish.
        case shutdown
        /// The machine woke from a suspend, or the network changed: the old
        /// connections may be dead without knowing it.
        case wake
        /// The answer of `GET /connection/station` asked for by `fetchStation`.
        case stationFetched(Epoch, Result<StationInformation, ICWSError>)
    }

    public enum StationRequest: Sendable, Equatable {
        case put(StationSettings)
        case delete
    }

    public enum Action: Sendable {
        case login(Ticket, base: ServerURL, userId: String, password: Secret)
        /// Ask whether a session the network cut off still lives.
        case checkResumable(Ticket, ICWSSession)
        /// Log out; `Ticket` nil means nobody waits for it.
        case logout(ICWSSession, Ticket?)
        case openMessages(Epoch, ICWSSession, sse: Bool)
        case checkSession(Epoch, ICWSSession)
        /// Drop `unsubscribe` (when set), then make `request` (when set).
        case subscribe(Epoch, ICWSSession, unit: Int, unsubscribe: String?, request: SubscriptionRequest?)
        case station(Ticket, ICWSSession, StationRequest)
        case startTimer(Ticket, TimerKind, Duration)
        case cancelTimer(Ticket)
        /// Cancel whatever still runs for this session (its stream, requests, checks).
        case endSessionWork(Epoch)
        case publish(SupervisorEvent)
        case replyStation(Ticket, Result<Void, StationCommandError>)
        case completeDisconnect(Ticket)
        case log(Logger.Level, String, Logger.Metadata)
        /// The machine has finished (after `shutdown`).
        case finished
        /// Drop every pooled connection: the next requests open new ones.
        case refreshConnections
        /// Read the station anew (`effectiveStationChangeMessage`).
        case fetchStation(Epoch, ICWSSession)
    }

    enum SessionEnd: Equatable {
        case down(reason: String, shouldReconnect: Bool)
        case failed(ICWSError)
        case reconnect
        case disconnect
    }

    struct Live {
        var session: ICWSSession
        var epoch: Epoch
        var started: Duration
        var sse: Bool
        var streamOpenedAt: Duration
        /// The messages in flight when the stream broke are gone (ICWS has no
        /// replay): once the next stream opens, the units are made anew and the
        /// server sends fresh snapshots.
        var resync = false
        var streamTimer: Ticket?
        var checkAttempt = 0
        /// A request was refused with 401: the session is being asked whether
        /// the server took it down on purpose (its connectionStateChange may be
        /// in a stream that never reads it), before a new login.
        var unauthorized: ICWSError?
        /// Units (indices) and the station restore, in order, still to do.
        var steps: [Step] = []
        var stepBusy = false
        var streamRetry = Backoff(policy: BackoffPolicy())
        /// After a wake-up: the stream is reopened as soon as the check says the session lives.
        var reopenAtOnce = false
        /// Faulted or failed units waiting to be made again: timer → unit.
        var unitTimers: [Ticket: Int] = [:]
        var unitRetry: [Int: Backoff] = [:]
        /// When each unit's request last succeeded: one that then lived
        /// `stableAfter` starts its next retry from the shortest wait.
        var unitMadeAt: [Int: Duration] = [:]
        /// A station restore or re-read that failed, waiting to be tried again.
        var stationTimer: Ticket?
        var stationRetry = Backoff(policy: BackoffPolicy())
        /// What the station timer does when it fires.
        var stationRetryFetches = false
    }

    enum Step: Equatable {
        case unit(Int)
        case station
    }

    enum Phase {
        case idle
        case resuming(Ticket)
        case loggingIn(Ticket, candidates: [ServerURL], index: Int)
        case live(Live)
        case loggingOut(Ticket, then: AfterLogout)
        case waiting(Ticket)
        case stopped
        case finishing(outstanding: Int)
        case finished
    }

    enum AfterLogout: Equatable {
        case stop
        case login
    }

    struct StationOp {
        var ticket: Ticket
        /// The command, or nil for the restore.
        var command: StationCommand?
        var epoch: Epoch
        var settings: StationSettings?
    }

    // MARK: State

    public private(set) var configuration: SupervisorConfiguration
    public let units: [SubscriptionUnit]
    public private(set) var status = SessionStatus()
    public private(set) var station = StationStatus()
    public private(set) var unitStates: [SubscriptionUnitState]
    var phase: Phase = .idle
    private var lastPublishedStatus: SessionStatus?
    private var lastPublishedStation: StationStatus?
    private var retry = Backoff(policy: BackoffPolicy())
    private var preferredBase: ServerURL?
    /// A session cut off by the network (not ended by the server): asked for
    /// first when the network is back, so a blip does not leave an orphan
    /// session (and a licence) on the server.
    private(set) var resumable: ICWSSession?
    private var learnedAlternates: [ServerURL] = []
    private var sessionsEstablished = 0
    private var epoch: Epoch = 0
    private var tickets: Ticket = 0
    /// Disconnect requests waiting for the login or logout under way.
    private var pendingDisconnects: [Ticket] = []
    /// A reload asked for a new session while a login was under way.
    private var pendingReload = false
    /// Station operations run one at a time, in the order they came.
    private var stationQueue: [StationOp] = []
    private var stationBusy: StationOp?
    private var out: [Action] = []
    /// The time of the event being handled, and its random draw.
    private var now: Duration = .zero
    private var draw: Double = 0

    public init(configuration: SupervisorConfiguration, units: [SubscriptionUnit] = SubscriptionUnit.standard) {
        self.configuration = configuration
        self.units = units
        unitStates = Array(repeating: .idle, count: units.count)
        station.requested = configuration.initialStation
        status.userId = configuration.userId
        status.server = configuration.servers.first?.description ?? ""
    }

    /// The live session and its epoch, if any.
    public var current: (session: ICWSSession, epoch: Epoch)? {
        if case .live(let l) = phase { return (l.session, l.epoch) }
        return nil
    }

    /// A fresh ticket for a request the caller makes (a disconnect, a station command).
    public mutating func ticket() -> Ticket {
        tickets &+= 1
        return tickets
    }

    /// Feeds one event; the actions to perform, in order, are appended to `actions`.
    /// `now` is monotonic time; `unit` a uniform draw in [0, 1) for jitter.
    public mutating func handle(_ event: Event, now: Duration, unit: Double, into actions: inout [Action]) {
        swap(&out, &actions)
        defer { swap(&out, &actions) }
        self.now = now
        draw = unit
        step(event)
        // A message publishes what it changes itself (in order with the message).
        if case .message = event { return }
        flush()
    }

    /// The same, returning the actions (for tests).
    public mutating func handle(_ event: Event, now: Duration, unit: Double) -> [Action] {
        var actions: [Action] = []
        handle(event, now: now, unit: unit, into: &actions)
        return actions
    }

    // MARK: Events

    private mutating func step(_ event: Event) {
        switch event {
        case .start:
            guard case .idle = phase else { return }
            attempt()

        case .configure(let new):
            configure(new)

        case .reconnect(let coalesce):
            reconnect(coalesce: coalesce)

        case .disconnect(let t):
            disconnect(t)

        case .stationCommand(let t, let command):
            stationQueue.append(StationOp(ticket: t, command: command, epoch: 0))
            dispatchStation()

        case .loginAnswered(let t, let base, let result):
            loginAnswered(t, base: base, result)

        case .resumeAnswered(let t, let result):
            resumeAnswered(t, result)

        case .loggedOut(let t):
            loggedOut(t)

        case .streamOpened(let e):
            guard case .live(var l) = phase, l.epoch == e, l.resync else { return }
            l.resync = false
            l.steps += unitSteps
            phase = .live(l)
            nextStep()

        case .message(let e, let result):
            message(e, result)

        case .streamEnded(let e, let error):
            guard case .live(var l) = phase, l.epoch == e else { return }
            if let error {
                if error.status == 401 { return unauthorized(error, epoch: e) }
                if error.status == 404 { return end(.failed(error)) }
                status.lastError = error.shortReason
                flush()
                log(.warning, "message stream interrupted", ["icws.error": "\(error)"])
            }
            l.checkAttempt = 0
            phase = .live(l)
            out.append(.checkSession(e, l.session))

        case .sessionChecked(let e, let result):
            sessionChecked(e, result)

        case .subscriptionAnswered(let e, let index, let result):
            guard case .live(var l) = phase, l.epoch == e, units.indices.contains(index) else { return }
            l.stepBusy = false
            phase = .live(l)
            switch result {
            case .success:
                unitStates[index] = units[index].request(configuration.subscriptions, l.session.userId).map { .active(path: $0.path) } ?? .idle
                l.unitMadeAt[index] = now
                phase = .live(l)
                refreshSubscriptions()
            case .failure(let error):
                unitStates[index] = .failed(error.shortReason)
                refreshSubscriptions()
                if sessionFailed(error, epoch: e) { return }
                status.lastError = error.shortReason
                flush()
                // Made again with the unit's backoff until it succeeds or the session ends.
                log(.error, "subscription failed; making it again", ["icws.subscription": "\(units[index].name)", "icws.error": "\(error)"])
                scheduleUnitRetry(index)
            }
            nextStep()

        case .stationAnswered(let t, let result):
            stationAnswered(t, result)

        case .requestFailed(let e, let error):
            _ = sessionFailed(error, epoch: e)

        case .timerFired(let t):
            timerFired(t)

        case .shutdown:
            shutdown()

        case .wake:
            wake()

        case .stationFetched(let e, let result):
            guard case .live(let l) = phase, l.epoch == e else { return }
            switch result {
            case .success(let info):
                out.append(.publish(.message(.stationConnectionStateChange(StationConnectionStateChangeMessage(isDelta: false, newStationInfo: info)))))
            case .failure(let error):
                if error.status == 404 {
                    if station.connected {
                        station.connected = false
                        station.ready = false
                        flush()
                    }
                } else if !sessionFailed(error, epoch: e) {
                    // Station.Info would stay stale: read it again with the backoff.
                    log(.warning, "station could not be read; reading it again", ["icws.error": "\(error)"])
                    scheduleStationRetry(fetch: true)
                }
            }
        }
    }

    /// After a suspend or a network change: fresh connections, the session
    /// checked at once and the stream reopened, or the next attempt now.
    private mutating func wake() {
        // (A burst of network changes is folded into one wake-up by the watcher.)
        switch phase {
        case .live(var l):
            log(.info, "woke up (suspend or network change): checking the session on a fresh connection", [:])
            out.append(.refreshConnections)
            l.reopenAtOnce = true
            if let t = l.streamTimer {
                // The stream was already down and waiting: check now.
                out.append(.cancelTimer(t))
                l.streamTimer = nil
                l.checkAttempt = 0
                phase = .live(l)
                out.append(.checkSession(l.epoch, l.session))
            } else {
                // The stream's end (its connection just dropped) brings the check.
                phase = .live(l)
            }
        case .waiting(let t):
            log(.info, "woke up (suspend or network change): trying again now", [:])
            // The outage goes on (the backoff keeps its age); only this wait is cut short.
            out.append(.cancelTimer(t))
            out.append(.refreshConnections)
            status.retryIn = nil
            attempt()
        default:
            return
        }
    }

    /// A unit named by a subscription state message: by the last part of its
    /// path (the subscription id ICWS reports), or its whole path.
    private func unitIndex(subscriptionId id: String) -> Int? {
        guard !id.isEmpty else { return nil }
        return unitStates.indices.first { i in
            guard let path = unitStates[i].path else { return false }
            return path == id || path.hasSuffix("/" + id) || path.split(separator: "/").last.map(String.init) == id
        }
    }

    /// `subscriptionStateMessage` / `queueSubscriptionStateMessage`.
    private mutating func subscriptionState(_ m: SubscriptionStateMessage) {
        guard case .live(var l) = phase else { return }
        guard let i = unitIndex(subscriptionId: m.subscriptionId ?? ""), let path = unitStates[i].path else {
            log(.warning, "subscription state for no known subscription", ["icws.subscription": "\(m.subscriptionId ?? "")", "icws.state": "\(m.state)"])
            return
        }
        switch m.state {
        case .normal:
            unitStates[i] = .active(path: path)
            l.unitRetry[i] = nil
        case .suspended:
            unitStates[i] = .suspended(path: path)
            log(.warning, "subscription suspended by the server", ["icws.subscription": "\(units[i].name)", "icws.error": "\(m.error?.serverText ?? "")"])
        case .faulted:
            unitStates[i] = .faulted(path: path)
            if let error = m.error { status.lastError = error.shortReason }
            log(.warning, "subscription faulted; making it again", ["icws.subscription": "\(units[i].name)", "icws.error": "\(m.error?.serverText ?? "")"])
            phase = .live(l)
            scheduleUnitRetry(i)
            refreshSubscriptions()
            flush()
            return
        default:
            return
        }
        phase = .live(l)
        refreshSubscriptions()
    }

    /// A unit that faulted or whose request failed is made again after its
    /// own backoff, as often as it takes, until it succeeds or the session
    /// ends (which cancels the timer). One timer a unit at a time.
    private mutating func scheduleUnitRetry(_ i: Int) {
        guard case .live(var l) = phase, !l.unitTimers.values.contains(i) else { return }
        var b = l.unitRetry[i] ?? Backoff(policy: configuration.backoff)
        if let made = l.unitMadeAt[i], now - made >= configuration.stableAfter { b.reset() }
        b.policy = configuration.backoff
        let delay = b.next(now: now, unit: draw)
        l.unitRetry[i] = b
        let t = ticket()
        l.unitTimers[t] = i
        phase = .live(l)
        out.append(.startTimer(t, .resubscribe, delay))
    }

    /// The station restore (or a re-read of its information) failed without
    /// ending the session: tried again after the station's backoff, until it
    /// succeeds, the session ends, or a command changes the station.
    private mutating func scheduleStationRetry(fetch: Bool) {
        guard case .live(var l) = phase else { return }
        l.stationRetryFetches = l.stationRetryFetches || fetch
        guard l.stationTimer == nil else {
            phase = .live(l)
            return
        }
        l.stationRetry.policy = configuration.backoff
        let delay = l.stationRetry.next(now: now, unit: draw)
        let t = ticket()
        l.stationTimer = t
        phase = .live(l)
        out.append(.startTimer(t, .stationRetry, delay))
    }

    private mutating func refreshSubscriptions() {
        var map: [String: UInt32] = [:]
        for (u, s) in zip(units, unitStates) { map[u.name] = s.health.rawValue }
        status.subscriptions = map
    }

    private mutating func configure(_ new: SupervisorConfiguration) {
        let old = configuration
        configuration = new
        if old.servers != new.servers || old.userId != new.userId || old.password != new.password
            || old.messaging != new.messaging
        {
            preferredBase = nil
            learnedAlternates = []
            discardResumable()
            reconnect(coalesce: false)
        } else if old.subscriptions != new.subscriptions, case .live(var l) = phase {
            l.steps += unitSteps
            phase = .live(l)
            nextStep()
        }
    }

    private mutating func reconnect(coalesce: Bool) {
        switch phase {
        case .idle, .finishing, .finished:
            return
        case .resuming, .loggingIn:
            // A caller's request is answered by the login under way; a reload's
            // gets a login with the new configuration.
            if !coalesce { pendingReload = true }
        case .live:
            end(.reconnect)
        case .loggingOut(let t, .stop):
            phase = .loggingOut(t, then: .login)
        case .loggingOut(_, .login):
            return
        case .waiting(let t):
            out.append(.cancelTimer(t))
            status.retryIn = nil
            retry.reset()
            discardResumable()
            attempt()
        case .stopped:
            retry.reset()
            discardResumable()
            attempt()
        }
    }

    private mutating func disconnect(_ t: Ticket) {
        switch phase {
        case .idle, .stopped, .finishing, .finished:
            out.append(.completeDisconnect(t))
        case .resuming, .loggingIn:
            // Answered once the login under way has ended (and its session, if
            // any, is logged out): no session is left behind.
            pendingDisconnects.append(t)
        case .live:
            pendingDisconnects.append(t)
            end(.disconnect)
        case .loggingOut(let lt, _):
            pendingDisconnects.append(t)
            phase = .loggingOut(lt, then: .stop)
        case .waiting(let wt):
            out.append(.cancelTimer(wt))
            status.retryIn = nil
            if let cutOff = resumable {
                resumable = nil
                pendingDisconnects.append(t)
                let lt = ticket()
                phase = .loggingOut(lt, then: .stop)
                out.append(.logout(cutOff, lt))
            } else {
                out.append(.completeDisconnect(t))
                stop()
            }
        }
    }

    // MARK: Logging in

    /// The next attempt: the cut-off session if there is one, else a login round.
    private mutating func attempt() {
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
    private mutating func loginRound() {
        var candidates: [ServerURL] = []
        if let preferredBase { Self.add(preferredBase, to: &candidates) }
        for u in configuration.servers { Self.add(u, to: &candidates) }
        for u in learnedAlternates { Self.add(u, to: &candidates) }
        login(candidates: candidates, index: 0, lastError: ICWSError(kind: .notConnected, message: "no server configured"))
    }

    /// Bounded: a chain of 503s that keeps naming new hosts ends the round.
    private static func add(_ u: ServerURL, to candidates: inout [ServerURL]) {
        if candidates.count < 24, !candidates.contains(u) { candidates.append(u) }
    }

    private mutating func login(candidates: [ServerURL], index: Int, lastError: ICWSError) {
        guard index < candidates.count else { return roundFailed(lastError) }
        let t = ticket()
        phase = .loggingIn(t, candidates: candidates, index: index)
        status.server = candidates[index].description
        out.append(.login(t, base: candidates[index], userId: configuration.userId, password: configuration.password))
    }

    private mutating func loginAnswered(
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

    private mutating func roundFailed(_ error: ICWSError) {
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

    private mutating func resumeAnswered(_ t: Ticket, _ result: Result<ConnectionCheck, ICWSError>) {
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

    private mutating func loggedOut(_ t: Ticket) {
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

    // MARK: The live session

    private mutating func goLive(_ s: ICWSSession) {
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
    private var unitSteps: [Step] {
        units.indices.sorted { units[$0].restoreOrder < units[$1].restoreOrder }.map { .unit($0) }
    }

    /// Starts the next restore or resubscribe step when none is under way.
    private mutating func nextStep() {
        guard case .live(var l) = phase, !l.stepBusy, !l.steps.isEmpty else { return }
        let next = l.steps.removeFirst()
        switch next {
        case .unit(let i):
            let request = units[i].request(configuration.subscriptions, l.session.userId)
            var unsubscribe: String?
            if case .active(let path) = unitStates[i], path != request?.path { unsubscribe = path }
            if request == nil && unsubscribe == nil {
                unitStates[i] = .idle
                phase = .live(l)
                return nextStep()
            }
            unitStates[i] = .pending
            l.stepBusy = true
            phase = .live(l)
            out.append(.subscribe(l.epoch, l.session, unit: i, unsubscribe: unsubscribe, request: request))
        case .station:
            l.stepBusy = true
            phase = .live(l)
            stationQueue.append(StationOp(ticket: ticket(), command: nil, epoch: l.epoch))
            dispatchStation()
        }
    }

    private mutating func message(_ e: Epoch, _ result: Result<ICWSMessage, MessageDecodeError>) {
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

    private mutating func sessionChecked(_ e: Epoch, _ result: Result<ConnectionCheck, ICWSError>) {
        guard case .live(var l) = phase, l.epoch == e, l.streamTimer == nil else { return }
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
            if now - l.streamOpenedAt >= configuration.stableAfter { l.streamRetry.reset() }
            l.streamRetry.policy = configuration.backoff
            // After a wake-up the stream is reopened at once.
            let delay = l.reopenAtOnce ? .zero : l.streamRetry.next(now: now, unit: draw)
            l.reopenAtOnce = false
            let t = ticket()
            l.streamTimer = t
            phase = .live(l)
            out.append(.startTimer(t, .streamRetry, delay))
        case .failure(let error):
            // A reset can take the pooled connections with it: one more try on a new one.
            if error.kind == .transport, l.checkAttempt == 0 {
                l.checkAttempt = 1
                let t = ticket()
                l.streamTimer = t
                phase = .live(l)
                out.append(.startTimer(t, .checkRetry, .milliseconds(100)))
            } else {
                end(.failed(error))
            }
        }
    }

    private mutating func timerFired(_ t: Ticket) {
        switch phase {
        case .waiting(let current) where current == t:
            status.retryIn = nil
            attempt()
        case .live(var l) where l.unitTimers[t] != nil:
            let i = l.unitTimers.removeValue(forKey: t) ?? 0
            l.steps.append(.unit(i))
            phase = .live(l)
            nextStep()
        case .live(var l) where l.stationTimer == t:
            l.stationTimer = nil
            if l.stationRetryFetches {
                l.stationRetryFetches = false
                out.append(.fetchStation(l.epoch, l.session))
            } else {
                l.steps.append(.station)
            }
            phase = .live(l)
            nextStep()
        case .live(var l) where l.streamTimer == t:
            l.streamTimer = nil
            if l.checkAttempt == 1 {
                l.checkAttempt = 2
                phase = .live(l)
                out.append(.checkSession(l.epoch, l.session))
            } else {
                l.resync = true
                l.streamOpenedAt = now
                phase = .live(l)
                out.append(.openMessages(l.epoch, l.session, sse: l.sse))
            }
        default:
            return
        }
    }

    /// A 401 or transport failure on a call means the session is gone: true
    /// when it ended it (or, for a 401, is finding out why).
    private mutating func sessionFailed(_ error: ICWSError, epoch e: Epoch) -> Bool {
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
    private mutating func unauthorized(_ error: ICWSError, epoch e: Epoch) {
        guard case .live(var l) = phase, l.epoch == e, l.unauthorized == nil else { return }
        l.unauthorized = error
        // The server no longer has the session, whatever the check says.
        station.connected = false
        if let t = l.streamTimer {
            out.append(.cancelTimer(t))
            l.streamTimer = nil
        }
        phase = .live(l)
        out.append(.checkSession(e, l.session))
    }

    /// Ends the live session and decides what comes next.
    private mutating func end(_ end: SessionEnd) {
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

    private mutating func backoff(reason: String, busy: Busy? = nil) {
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

    private mutating func stop() {
        phase = .stopped
        setState(.stopped)
    }

    private mutating func completeDisconnects() {
        for t in pendingDisconnects { out.append(.completeDisconnect(t)) }
        pendingDisconnects = []
    }

    /// A new session was asked for: the cut-off one is logged out in the background.
    private mutating func discardResumable() {
        guard let cutOff = resumable else { return }
        resumable = nil
        out.append(.logout(cutOff, nil))
    }

    private mutating func shutdown() {
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

    // MARK: The station

    /// Starts the next station operation when none is under way.
    private mutating func dispatchStation() {
        while stationBusy == nil, !stationQueue.isEmpty {
            var op = stationQueue.removeFirst()
            guard let command = op.command else {
                // The restore applies the last requested settings, unless the
                // session ended or a command already connected the station.
                guard case .live(let l) = phase, l.epoch == op.epoch, let requested = station.requested, !station.connected else {
                    restoreStepDone(epoch: op.epoch)
                    continue
                }
                op.settings = requested
                stationBusy = op
                out.append(.station(op.ticket, l.session, .put(requested)))
                return
            }
            guard case .live(let l) = phase, status.state == .connected else {
                if case .setReady = command, station.requested == nil {
                    out.append(.replyStation(op.ticket, .failure(.noStation)))
                } else {
                    out.append(.replyStation(op.ticket, .failure(.icws(ICWSError(kind: .notConnected, message: "no ICWS session now")))))
                }
                continue
            }
            op.epoch = l.epoch
            switch command {
            case .connect(let settings):
                op.settings = settings
                out.append(.station(op.ticket, l.session, .put(settings)))
            case .disconnect:
                out.append(.station(op.ticket, l.session, .delete))
            case .setReady(let ready):
                guard var settings = station.requested else {
                    out.append(.replyStation(op.ticket, .failure(.noStation)))
                    continue
                }
                settings.readyForInteractions = ready
                op.settings = settings
                out.append(.station(op.ticket, l.session, .put(settings)))
            }
            stationBusy = op
        }
    }

    private mutating func stationAnswered(_ t: Ticket, _ result: Result<Void, ICWSError>) {
        guard let op = stationBusy, op.ticket == t else { return }
        stationBusy = nil
        let isCurrent = current?.epoch == op.epoch
        switch (result, op.command) {
        case (.success, nil):
            if isCurrent, let settings = op.settings {
                station.connected = true
                station.ready = settings.readyForInteractions
                flush()
                log(.info, "station restored", ["icws.station": "\(settings.workstation ?? settings.remoteNumber ?? settings.kind.rawValue)"])
            }
            restoreStepDone(epoch: op.epoch)
        case (.failure(let error), nil):
            if isCurrent, !sessionFailed(error, epoch: op.epoch) {
                status.lastError = error.shortReason
                flush()
                log(.error, "station could not be restored; trying again", ["icws.error": "\(error)"])
                restoreStepDone(epoch: op.epoch)
                scheduleStationRetry(fetch: false)
            }
        case (.success, .disconnect?):
            station.requested = nil
            if isCurrent {
                station.connected = false
                station.ready = false
            }
            flush()
            out.append(.replyStation(t, .success(())))
        case (.success, _?):
            // An answer for a session that ended meanwhile says nothing of the
            // current one: the restore applies `requested`.
            station.requested = op.settings
            if isCurrent, let settings = op.settings {
                station.connected = true
                station.ready = settings.readyForInteractions
            }
            flush()
            out.append(.replyStation(t, .success(())))
        case (.failure(let error), _?):
            _ = sessionFailed(error, epoch: op.epoch)
            out.append(.replyStation(t, .failure(.icws(error))))
        }
        dispatchStation()
    }


    private mutating func restoreStepDone(epoch e: Epoch) {
        guard case .live(var l) = phase, l.epoch == e else { return }
        l.stepBusy = false
        phase = .live(l)
        nextStep()
    }

    // MARK: Helpers

    static func credentialsRejected(_ error: ICWSError) -> Bool {
        guard let status = error.status else { return false }
        return status == 400 || status == 401 || status == 403
    }

    /// `alternateHostList` entries as base URLs (same scheme and port), leaving
    /// out what is not a plain host name or address, or what the location policy refuses.
    private mutating func alternates(_ hosts: [String], of base: ServerURL) -> [ServerURL] {
        var result: [ServerURL] = []
        for host in hosts.prefix(32) {
            guard let url = base.withHost(host), configuration.locationPolicy.refusal(of: url, from: base) == nil else {
                log(.warning, "alternate host ignored: not a plain host name or address", ["icws.host": "\(host.prefix(80).debugDescription)"])
                continue
            }
            if !result.contains(url) { result.append(url) }
        }
        return result
    }

    private mutating func setState(_ state: SessionState) {
        status.state = state
        if state != .reconnecting { status.retryIn = nil }
    }

    private mutating func log(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) {
        out.append(.log(level, message, metadata))
    }

    /// Publishes the status and station when they changed since last published.
    private mutating func flush() {
        guard station != lastPublishedStation || status != lastPublishedStatus else { return }
        lastPublishedStation = station
        lastPublishedStatus = status
        out.append(.publish(.state(status, station)))
    }
}
