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
        /// The user's workgroups as read on the session numbered `session`
        /// (`SessionStatus.sessionSerial`): the units that depend on them are made again.
        case workgroups(session: UInt64, [String])
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
        /// The user's workgroups, as the bridge read them on this session.
        var workgroups: [String] = []

        var facts: SessionFacts { SessionFacts(userId: session.userId, workgroups: workgroups) }
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

    public internal(set) var configuration: SupervisorConfiguration
    public let units: [SubscriptionUnit]
    public internal(set) var status = SessionStatus()
    public internal(set) var station = StationStatus()
    public internal(set) var unitStates: [SubscriptionUnitState]
    var phase: Phase = .idle
    var lastPublishedStatus: SessionStatus?
    var lastPublishedStation: StationStatus?
    var retry = Backoff(policy: BackoffPolicy())
    var preferredBase: ServerURL?
    /// A session cut off by the network (not ended by the server): asked for
    /// first when the network is back, so a blip does not leave an orphan
    /// session (and a licence) on the server.
    var resumable: ICWSSession?
    var learnedAlternates: [ServerURL] = []
    var sessionsEstablished = 0
    var epoch: Epoch = 0
    var tickets: Ticket = 0
    /// Disconnect requests waiting for the login or logout under way.
    var pendingDisconnects: [Ticket] = []
    /// A reload asked for a new session while a login was under way.
    var pendingReload = false
    /// Station operations run one at a time, in the order they came.
    var stationQueue: [StationOp] = []
    var stationBusy: StationOp?
    var out: [Action] = []
    /// The time of the event being handled, and its random draw.
    var now: Duration = .zero
    var draw: Double = 0

    public init(configuration: SupervisorConfiguration, units: [SubscriptionUnit] = SubscriptionUnit.standard) {
        self.configuration = configuration
        self.units = units
        unitStates = Array(repeating: .idle, count: units.count)
        station.requested = configuration.initialStation
        status.userId = configuration.userId
        status.server = configuration.servers.first?.description ?? ""
    }

    /// The live session's state: read, and written back, in this one place.
    /// `live?.x = y` changes the live phase and does nothing in any other.
    var live: Live? {
        get {
            if case .live(let l) = phase { return l }
            return nil
        }
        set {
            guard let newValue, case .live = phase else { return }
            phase = .live(newValue)
        }
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

    mutating func step(_ event: Event) {
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
            guard let l = live, l.epoch == e, l.resync else { return }
            let steps = unitSteps
            live?.resync = false
            live?.steps += steps
            nextStep()

        case .message(let e, let result):
            message(e, result)

        case .streamEnded(let e, let error):
            guard let l = live, l.epoch == e else { return }
            if let error {
                if error.status == 401 { return unauthorized(error, epoch: e) }
                if error.status == 404 { return end(.failed(error)) }
                status.lastError = error.shortReason
                flush()
                log(.warning, "message stream interrupted", ["icws.error": "\(error)"])
            }
            live?.checkAttempt = 0
            out.append(.checkSession(e, l.session))

        case .sessionChecked(let e, let result):
            sessionChecked(e, result)

        case .subscriptionAnswered(let e, let index, let result):
            guard let l = live, l.epoch == e, units.indices.contains(index) else { return }
            live?.stepBusy = false
            switch result {
            case .success:
                unitStates[index] = units[index].request(configuration.subscriptions, l.facts).map { .active(path: $0.path) } ?? .idle
                let madeAt = now
                live?.unitMadeAt[index] = madeAt
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

        case .workgroups(let serial, let ids):
            guard let l = live, serial == UInt64(sessionsEstablished), l.workgroups != ids else { return }
            let before = units.map { $0.request(configuration.subscriptions, l.facts) }
            live?.workgroups = ids
            let facts = SessionFacts(userId: l.session.userId, workgroups: ids)
            for i in units.indices where units[i].request(configuration.subscriptions, facts) != before[i] && !l.steps.contains(.unit(i)) {
                live?.steps.append(.unit(i))
            }
            nextStep()

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
    mutating func wake() {
        // (A burst of network changes is folded into one wake-up by the watcher.)
        switch phase {
        case .live(let l):
            log(.info, "woke up (suspend or network change): checking the session on a fresh connection", [:])
            out.append(.refreshConnections)
            live?.reopenAtOnce = true
            // Else the stream's end (its connection just dropped) brings the check.
            if let t = l.streamTimer {
                // The stream was already down and waiting: check now.
                out.append(.cancelTimer(t))
                live?.streamTimer = nil
                live?.checkAttempt = 0
                out.append(.checkSession(l.epoch, l.session))
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

    mutating func configure(_ new: SupervisorConfiguration) {
        let old = configuration
        configuration = new
        if old.servers != new.servers || old.userId != new.userId || old.password != new.password
            || old.messaging != new.messaging
        {
            preferredBase = nil
            learnedAlternates = []
            discardResumable()
            reconnect(coalesce: false)
        } else if old.subscriptions != new.subscriptions, live != nil {
            let steps = unitSteps
            live?.steps += steps
            nextStep()
        }
    }

    mutating func reconnect(coalesce: Bool) {
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

    mutating func disconnect(_ t: Ticket) {
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

    // MARK: Helpers

    static func credentialsRejected(_ error: ICWSError) -> Bool {
        guard let status = error.status else { return false }
        return status == 400 || status == 401 || status == 403
    }

    /// `alternateHostList` entries as base URLs (same scheme and port), leaving
    /// out what is not a plain host name or address, or what the location policy refuses.
    mutating func alternates(_ hosts: [String], of base: ServerURL) -> [ServerURL] {
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

    mutating func setState(_ state: SessionState) {
        status.state = state
        if state != .reconnecting { status.retryIn = nil }
    }

    mutating func log(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) {
        out.append(.log(level, message, metadata))
    }

    /// Publishes the status and station when they changed since last published.
    mutating func flush() {
        guard station != lastPublishedStation || status != lastPublishedStatus else { return }
        lastPublishedStation = station
        lastPublishedStatus = status
        out.append(.publish(.state(status, station)))
    }
}
