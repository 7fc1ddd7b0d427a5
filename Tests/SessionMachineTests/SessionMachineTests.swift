@testable import ICWS
import Testing

/// The session machine alone: no network, no clock, no tasks. Each walk
/// plays a server and its callers at random (from a seed, so a failure is
/// replayed by its seed), answers the machine's requests in any order, fails
/// them in every way, and checks the invariants after every event.
@Suite struct SessionMachineTests {
    @Test func invariantsHoldOverSeededRandomWalks() {
        var seen = Coverage()
        for seed in UInt64(1)...3_000 {
            var walk = Walk(seed: seed)
            walk.run(steps: 250)
            seen.add(walk)
            if walk.failure != nil { return }
        }
        // The walks reach what the invariants are about.
        #expect(seen.sessions > 10_000 && seen.restores > 1_000 && seen.staleEvents > 10_000, "\(seen)")
        #expect(seen.commandsAnswered > 10_000 && seen.disconnects > 2_000 && seen.resumes > 300, "\(seen)")
    }

    /// Long walks reach deep states: many sessions, outages and reloads.
    @Test func invariantsHoldOverLongWalks() {
        for seed in UInt64(10_001)...10_040 {
            var walk = Walk(seed: seed)
            walk.allowShutdown = false
            walk.run(steps: 5_000)
            if walk.failure != nil { break }
        }
    }

    @Test func aStaleAnswerOfAnEndedSessionDoesNothing() throws {
        var w = Walk(seed: 7)
        w.send(.start)
        w.answerLogin(success: true)
        let first = try #require(w.machine.current)
        w.send(.reconnect(coalesce: true))
        w.answerAllLogouts()
        w.answerLogin(success: true)
        let second = try #require(w.machine.current)
        #expect(first.epoch != second.epoch)
        let before = (w.machine.status, w.machine.station)
        for event in w.staleEvents(epoch: first.epoch) {
            let actions = w.machine.handle(event, now: w.now, unit: 0.5)
            #expect(actions.isEmpty, "\(event) → \(actions)")
        }
        #expect(w.machine.status == before.0 && w.machine.station == before.1)
        #expect(w.machine.current?.epoch == second.epoch)
    }

    /// A reload while a cut-off session is being asked for does not leave the
    /// machine waiting for an answer it no longer acts on (found in review).
    @Test func aReloadDuringAResumeCheckLogsIn() throws {
        var w = Walk(seed: 13)
        w.send(.start)
        w.answerLogin(success: true)
        let live = try #require(w.machine.current)
        // The network cuts the session off: it is kept to be resumed.
        w.send(.requestFailed(live.epoch, ICWSError(kind: .transport, message: "unreachable")))
        #expect(w.machine.resumable != nil)
        w.fireTimers()
        let check = try #require(w.pendingResume.first)
        w.pendingResume.removeAll()
        // A reload with another server while the check is under way.
        var c = w.machine.configuration
        c.servers = [Walk.servers[1]]
        w.send(.configure(c))
        w.send(.resumeAnswered(check.0, .failure(ICWSError(kind: .transport, message: "still unreachable"))))
        #expect(!w.pendingLogins.isEmpty, "a login follows")
        w.answerLogin(success: true)
        #expect(w.machine.current != nil)
        let t = w.machine.ticket()
        w.disconnects.insert(t)
        w.send(.disconnect(t))
        w.answerAllLogouts()
        #expect(w.completedDisconnects.contains(t), "a disconnect is answered")
    }

    /// A 401 during the restore, from a session the server took down on
    /// purpose before its message was read: the session is asked first, and
    /// a down without shouldReconnect stops; any other answer logs in again.
    @Test func aRefusedRequestAsksTheSessionBeforeANewLogin() throws {
        for answer in ["down", "refused"] {
            var w = Walk(seed: 17)
            w.send(.start)
            w.answerLogin(success: true)
            let live = try #require(w.machine.current)
            w.pendingChecks.removeAll()
            let refused = ICWSError(kind: .server(status: 401), message: "The session is not valid.")
            w.send(.subscriptionAnswered(live.epoch, unit: 0, .failure(refused)), error: refused, epoch: live.epoch)
            #expect(w.pendingLogins.isEmpty, "no login before the answer")
            #expect(!w.machine.station.connected)
            let check = try #require(w.pendingChecks.first)
            #expect(check.0 == live.epoch)
            w.pendingChecks.removeAll()
            if answer == "down" {
                let down = SessionMachine.ConnectionCheck(state: .down, reason: "You have been logged off by an administrator.", shouldReconnect: nil)
                w.send(.sessionChecked(live.epoch, .success(down)))
                #expect(w.machine.status.state == .stopped)
                w.fireTimers()
                #expect(w.pendingLogins.isEmpty, "stopped until a reconnect")
            } else {
                w.send(.sessionChecked(live.epoch, .failure(refused)))
                #expect(w.machine.current == nil)
                w.fireTimers()
                #expect(!w.pendingLogins.isEmpty, "a 401 on the check too: a new login")
            }
        }
    }

    @Test func theRestoreAppliesTheNewestCommandAndComesAfterOneUnderWay() throws {
        var w = Walk(seed: 11)
        w.send(.start)
        w.answerLogin(success: true)
        w.answerSubscriptionsAndStation()
        let a = StationSettings(kind: .workstation, workstation: "7001", readyForInteractions: true)
        let connect = w.command(.connect(a))
        // The command is under way when the session ends and a new one begins.
        let put = try #require(w.pendingStation.first)
        w.serverEnds(epoch: try #require(w.machine.current).epoch)
        w.send(.message(try #require(w.machine.current).epoch, .success(.connectionStateChange(.init(isDelta: true, previousConnectionState: .up, newConnectionState: .down, reason: "restart", shouldReconnect: true)))))
        w.fireTimers()
        w.answerLogin(success: true)
        w.answerSubscriptions()
        #expect(w.pendingStation.count == 1, "the restore waits for the command under way")
        // The server had taken the PUT just before it went down.
        w.pendingStation.removeAll { $0.ticket == put.ticket }
        w.send(.stationAnswered(put.ticket, .success(())))
        #expect(w.replies[connect] == true)
        let restore = try #require(w.pendingStation.first)
        #expect(restore.request == .put(a), "the restore applies what the command set")
        w.answerStation(restore.ticket, success: true)
        #expect(w.machine.station.connected && w.machine.station.ready)
    }
}

/// A walk: the machine, a model of the server, and the machine's requests still open.
struct Walk {
    struct PendingStation {
        var ticket: SessionMachine.Ticket
        var session: String
        var request: SessionMachine.StationRequest
    }

    var machine: SessionMachine
    var rng: Rng
    let seed: UInt64
    var now: Duration = .zero
    /// The first broken invariant (a reference, so checks need not mutate the walk).
    let outcome = Outcome()
    var failure: String? { outcome.failure }
    var step = 0
    let initial: StationSettings?

    // The server: sessions it holds, and the station of each.
    var serverSessions: Set<String> = []
    var serverStation: [String: StationSettings] = [:]
    var sessionCount = 0

    // Open requests of the machine.
    var pendingLogins: [(SessionMachine.Ticket, ServerURL)] = []
    var pendingResume: [(SessionMachine.Ticket, ICWSSession)] = []
    var pendingLogouts: [(ICWSSession, SessionMachine.Ticket?)] = []
    var pendingChecks: [(SessionMachine.Epoch, ICWSSession)] = []
    var pendingSubscriptions: [(SessionMachine.Epoch, Int)] = []
    var pendingStation: [PendingStation] = []
    var timers: [SessionMachine.Ticket] = []
    var openStreams: [SessionMachine.Epoch: ICWSSession] = [:]
    /// Epochs whose work was started and not ended.
    var liveWork: Set<SessionMachine.Epoch> = []
    var endedEpochs: [SessionMachine.Epoch] = []

    // Callers.
    var commandTickets: [SessionMachine.Ticket: SessionMachine.StationCommand] = [:]
    var replies: [SessionMachine.Ticket: Bool] = [:]
    var disconnects: Set<SessionMachine.Ticket> = []
    var completedDisconnects: Set<SessionMachine.Ticket> = []
    /// What the last successful station command left requested (the restore's truth).
    var requested: StationSettings?
    var finished = false
    var shutDown = false
    var allowShutdown = true
    var restores = 0
    var refreshes = 0
    var pendingFetches: [SessionMachine.Epoch] = []
    var staleEvents = 0
    var resumes = 0

    static let servers = [ServerURL(string: "http://a.test:8018")!, ServerURL(string: "http://b.test:8018")!]

    init(seed: UInt64) {
        self.seed = seed
        rng = Rng(seed: seed)
        var config = SupervisorConfiguration(servers: Self.servers, userId: "agent", password: Secret("pw"))
        config.stableAfter = .seconds(30)
        initial = seed % 3 == 0 ? nil : StationSettings(kind: .workstation, workstation: "init", readyForInteractions: true)
        config.initialStation = initial
        requested = initial
        machine = SessionMachine(configuration: config)
    }

    func check(_ ok: Bool, _ what: @autoclosure () -> String) {
        guard !ok, outcome.failure == nil else { return }
        let text = "seed \(seed), step \(step): \(what())\nlast events:\n"
            + outcome.trace.suffix(12).map { e, a in "\(e)".prefix(200) + " → " + a.map { "\($0)".prefix(90) }.joined(separator: "; ") }
            .joined(separator: "\n")
        outcome.failure = text
        Issue.record(Comment(rawValue: text))
    }

    // MARK: Driving

    mutating func send(_ event: SessionMachine.Event) {
        let actions = machine.handle(event, now: now, unit: rng.unit())
        outcome.trace.append((event, actions))
        if outcome.trace.count > 64 { outcome.trace.removeFirst(32) }
        for a in actions { record(a, for: event) }
        checkInvariants()
    }

    mutating func record(_ action: SessionMachine.Action, for event: SessionMachine.Event) {
        if case .logout = action {} else { check(!finished, "an action after finished: \(action)") }
        switch action {
        case .login(let t, let base, _, _):
            check(pendingLogins.isEmpty && pendingResume.isEmpty, "two logins at once")
            pendingLogins.append((t, base))
        case .checkResumable(let t, let s):
            resumes += 1
            pendingResume.append((t, s))
        case .logout(let s, let t):
            pendingLogouts.append((s, t))
        case .openMessages(let e, let s, _):
            epochSession[e] = s.sessionId
            check(e == machine.current?.epoch, "messages opened for epoch \(e), live is \(String(describing: machine.current?.epoch))")
            check(!endedEpochs.contains(e), "messages opened for the ended epoch \(e)")
            openStreams[e] = s
            liveWork.insert(e)
        case .checkSession(let e, let s):
            check(e == machine.current?.epoch, "a check for a session that is not live")
            openStreams[e] = nil
            pendingChecks.append((e, s))
            liveWork.insert(e)
        case .subscribe(let e, _, let unit, _, _):
            check(e == machine.current?.epoch, "a subscription for a session that is not live")
            check(!pendingSubscriptions.contains { $0.0 == e }, "two subscription requests at once")
            pendingSubscriptions.append((e, unit))
            liveWork.insert(e)
        case .station(let t, let s, let request):
            check(pendingStation.isEmpty, "two station requests at once")
            if commandTickets[t] == nil {
                restores += 1
                // The restore: exactly what the newest successful command left.
                check(requested.map { request == .put($0) } ?? false,
                      "the restore sends \(request), the newest command left \(String(describing: requested))")
            }
            lastStationRequest[t] = request
            pendingStation.append(PendingStation(ticket: t, session: s.sessionId, request: request))
        case .startTimer(let t, _, let d):
            check(d >= .zero, "a negative wait")
            timers.append(t)
        case .cancelTimer(let t):
            timers.removeAll { $0 == t }
        case .endSessionWork(let e):
            liveWork.remove(e)
            openStreams[e] = nil
            pendingChecks.removeAll { $0.0 == e }
            pendingSubscriptions.removeAll { $0.0 == e }
            pendingFetches.removeAll { $0 == e }
            endedEpochs.append(e)
        case .publish: break
        case .replyStation(let t, let result):
            check(commandTickets[t] != nil, "a reply to no command")
            check(replies[t] == nil, "two replies to one command")
            if case .success = result {
                switch commandTickets[t] {
                case .disconnect?: requested = nil
                default:
                    // The PUT that the server accepted.
                    if case .put(let s)? = lastStationRequest[t] { requested = s }
                }
            }
            replies[t] = (try? result.get()) != nil
        case .completeDisconnect(let t):
            check(disconnects.contains(t) && !completedDisconnects.contains(t), "a disconnect completed twice or never asked")
            completedDisconnects.insert(t)
        case .log(_, let message, _):
            check(!message.contains("pw"), "a secret in a log line")
        case .finished:
            finished = true
        case .refreshConnections:
            refreshes += 1
        case .fetchStation(let e, _):
            check(e == machine.current?.epoch, "a station read for a session that is not live")
            pendingFetches.append(e)
            liveWork.insert(e)
        }
    }

    var lastStationRequest: [SessionMachine.Ticket: SessionMachine.StationRequest] = [:]
    var epochSession: [SessionMachine.Epoch: String] = [:]

    /// The server ends a session (it said down, or answered 401 for it).
    mutating func serverEnds(epoch e: SessionMachine.Epoch) {
        if let id = epochSession[e] { serverEnds(id) }
    }

    mutating func serverEnds(_ id: String) {
        serverSessions.remove(id)
        serverStation[id] = nil
    }

    /// Sends an event that reports `error` for session epoch `e`; a 401 means the server dropped it.
    mutating func send(_ event: SessionMachine.Event, error: ICWSError?, epoch e: SessionMachine.Epoch) {
        if error?.status == 401 { serverEnds(epoch: e) }
        send(event)
    }

    mutating func checkInvariants() {
        // At most one live session: one epoch with work, and it is the live one.
        check(liveWork.count <= 1, "work of \(liveWork.count) sessions at once")
        if let e = liveWork.first { check(e == machine.current?.epoch, "work of epoch \(e) while \(String(describing: machine.current?.epoch)) is live") }
        check((machine.status.state == .connected) == (machine.current != nil), "state \(machine.status.state) with live=\(machine.current != nil)")
        // No session is left on the server: each is live, cut off (to resume), or being logged out.
        let held = Set([machine.current?.session.sessionId, machine.resumable?.sessionId].compactMap { $0 })
            .union(pendingLogouts.map(\.0.sessionId))
        let orphans = serverSessions.subtracting(held)
        check(orphans.isEmpty, "sessions left on the server: \(orphans.sorted())")
        if let live = machine.current?.session.sessionId, machine.station.connected {
            check(serverStation[live] != nil || pendingStation.contains { $0.session == live }, "station connected but the server has none")
        }
    }

    // MARK: Answers

    mutating func newSession(at base: ServerURL) -> ICWSSession {
        sessionCount += 1
        let id = "s\(sessionCount)"
        serverSessions.insert(id)
        return ICWSSession(
            base: base, sessionId: id, csrfToken: Secret("csrf-\(id)"), cookie: Secret(""), userId: "agent",
            userDisplayName: "Agent", icServer: nil, features: ["messaging": 2], alternateHosts: [])
    }

    mutating func answerLogin(success: Bool) {
        guard !pendingLogins.isEmpty else { return }
        let (t, base) = pendingLogins.removeFirst()
        if success {
            let s = newSession(at: base)
            send(.loginAnswered(t, base: base, .success(s)))
        } else {
            send(.loginAnswered(t, base: base, .failure(randomLoginError())))
        }
    }

    mutating func answerAllLogouts() {
        while !pendingLogouts.isEmpty { answerLogout(0) }
    }

    mutating func answerLogout(_ i: Int) {
        let (s, t) = pendingLogouts.remove(at: i)
        serverSessions.remove(s.sessionId)
        serverStation[s.sessionId] = nil
        if let t { send(.loggedOut(t)) }
    }

    mutating func answerSubscriptions() {
        while let (e, unit) = pendingSubscriptions.first {
            pendingSubscriptions.removeFirst()
            send(.subscriptionAnswered(e, unit: unit, .success(())))
        }
    }

    mutating func answerSubscriptionsAndStation() {
        for _ in 0..<10 {
            answerSubscriptions()
            if let p = pendingStation.first { answerStation(p.ticket, success: true) }
        }
    }

    mutating func answerStation(_ t: SessionMachine.Ticket, success: Bool) {
        guard let i = pendingStation.firstIndex(where: { $0.ticket == t }) else { return }
        let p = pendingStation.remove(at: i)
        if success, serverSessions.contains(p.session) {
            switch p.request {
            case .put(let s): serverStation[p.session] = s
            case .delete: serverStation[p.session] = nil
            }
            send(.stationAnswered(t, .success(())))
        } else if success {
            send(.stationAnswered(t, .failure(ICWSError(kind: .server(status: 401), message: "gone"))))
        } else {
            let error = randomRequestError()
            if error.status == 401 { serverEnds(p.session) }
            send(.stationAnswered(t, .failure(error)))
        }
    }

    /// A caller's station command.
    @discardableResult
    mutating func command(_ c: SessionMachine.StationCommand) -> SessionMachine.Ticket {
        let t = machine.ticket()
        commandTickets[t] = c
        send(.stationCommand(t, c))
        return t
    }

    mutating func fireTimers() {
        while let t = timers.first {
            timers.removeFirst()
            send(.timerFired(t))
        }
    }

    func staleEvents(epoch e: SessionMachine.Epoch) -> [SessionMachine.Event] {
        let gone = ICWSError(kind: .server(status: 401), message: "gone")
        return [
            .message(e, .success(.connectionStateChange(.init(isDelta: true, previousConnectionState: .up, newConnectionState: .down, reason: "old", shouldReconnect: true)))),
            .message(e, .success(.stationConnectionStateChange(.init(isDelta: true, newStationInfo: StationInformation())))),
            .message(e, .failure(MessageDecodeError(field: "x", reason: "bad"))),
            .streamOpened(e), .streamEnded(e, gone), .streamEnded(e, nil),
            .sessionChecked(e, .success(.init(state: .down, reason: "old", shouldReconnect: false))),
            .sessionChecked(e, .failure(gone)),
            .subscriptionAnswered(e, unit: 0, .failure(gone)), .requestFailed(e, gone),
            .stationFetched(e, .success(StationInformation())), .stationFetched(e, .failure(gone)),
            .message(e, .success(.subscriptionState(SubscriptionStateMessage(isDelta: true, subscriptionId: "connection/station", state: .faulted)))),
            .message(e, .success(.effectiveStationChange(EffectiveStationChangeMessage(stationId: nil)))),
        ]
    }

    mutating func randomLoginError() -> ICWSError {
        switch rng.below(6) {
        case 0: return ICWSError(kind: .server(status: 503), message: "busy", alternateHosts: rng.below(2) == 0 ? ["c.test"] : [])
        case 1: return ICWSError(kind: .server(status: 401), message: "bad password")
        case 2: return ICWSError(kind: .timeout, message: "slow")
        case 3: return ICWSError(kind: .server(status: 500), message: "oops")
        default: return ICWSError(kind: .transport, message: "refused")
        }
    }

    mutating func randomRequestError() -> ICWSError {
        switch rng.below(4) {
        case 0: return ICWSError(kind: .server(status: 401), message: "expired", challenge: nil)
        case 1: return ICWSError(kind: .transport, message: "reset")
        case 2: return ICWSError(kind: .server(status: 400), errorId: "error.request.connection.unknownStation", message: "no")
        default: return ICWSError(kind: .timeout, message: "slow")
        }
    }

    mutating func randomMessage() -> ICWSMessage {
        switch rng.below(8) {
        case 0: return .connectionStateChange(.init(isDelta: true, previousConnectionState: .up, newConnectionState: .down, reason: "bye", shouldReconnect: rng.below(3) != 0))
        case 1: return .stationConnectionStateChange(.init(isDelta: rng.below(2) == 0, newStationInfo: StationInformation()))
        case 2: return .connectionStateChange(.init(isDelta: true, previousConnectionState: .up, newConnectionState: .unknown(9), reason: "?"))
        case 3:
            let state: SubscriptionState = [.normal, .suspended, .faulted, .unknown(7)][rng.below(4)]
            let id = ["connection/station", "interaction-alerting", "nothing-known", ""][rng.below(4)]
            return .subscriptionState(SubscriptionStateMessage(isDelta: true, subscriptionId: id, state: state))
        case 4: return .effectiveStationChange(EffectiveStationChangeMessage(stationId: rng.below(2) == 0 ? nil : "7001"))
        default: return .interactionAlerting(.init(isDelta: true, details: [InteractionAlertDetail(interactionId: "\(rng.below(100))")]))
        }
    }

    mutating func randomCommand() -> SessionMachine.StationCommand {
        switch rng.below(4) {
        case 0: return .disconnect
        case 1: return .setReady(rng.below(2) == 0)
        default: return .connect(StationSettings(kind: .workstation, workstation: "70\(rng.below(10))", readyForInteractions: rng.below(2) == 0))
        }
    }

    // MARK: The walk

    mutating func run(steps: Int) {
        send(.start)
        while step < steps, failure == nil, !finished {
            step += 1
            now += .milliseconds(Int64(rng.below(4_000)))
            one()
        }
        // Stop, and answer everything still open: the machine must finish, and
        // every caller must have had an answer.
        if !shutDown { send(.shutdown) }
        var guardSteps = 0
        while !finished, failure == nil, guardSteps < 10_000 {
            guardSteps += 1
            if !pendingLogouts.isEmpty { answerLogout(0); continue }
            if let p = pendingStation.first { answerStation(p.ticket, success: rng.below(2) == 0); continue }
            if !pendingLogins.isEmpty { answerLogin(success: rng.below(2) == 0); continue }
            if let (t, _) = pendingResume.first { pendingResume.removeFirst(); send(.resumeAnswered(t, .success(.init(state: .up)))); continue }
            break
        }
        check(finished, "did not finish after shutdown")
        for t in commandTickets.keys { check(replies[t] != nil, "station command \(t) never answered") }
        for t in disconnects { check(completedDisconnects.contains(t), "disconnect \(t) never completed") }
        check(serverSessions.subtracting(pendingLogouts.map(\.0.sessionId)).isEmpty || !machine.configuration.logoutOnStop,
              "sessions left on the server after stop: \(serverSessions.sorted())")
    }

    mutating func one() {
        switch rng.below(100) {
        case 0..<14:
            guard !pendingLogins.isEmpty else { return }
            let r = rng.below(10)
            if r < 6 { answerLogin(success: true) } else { answerLogin(success: false) }
        case 14..<18:
            guard !pendingResume.isEmpty else { return }
            let (t, s) = pendingResume.removeFirst()
            let pendingResumeSession: String? = s.sessionId
            switch rng.below(3) {
            case 0: send(.resumeAnswered(t, .success(.init(state: .up))))
            case 1:
                if let id = pendingResumeSession { serverEnds(id) }
                send(.resumeAnswered(t, .success(.init(state: .down))))
            default: send(.resumeAnswered(t, .failure(ICWSError(kind: .transport, message: "unreachable"))))
            }
        case 18..<24:
            guard !pendingLogouts.isEmpty else { return }
            answerLogout(rng.below(pendingLogouts.count))
        case 24..<34:
            guard !pendingSubscriptions.isEmpty else { return }
            let (e, unit) = pendingSubscriptions.removeFirst()
            if rng.below(8) == 0 {
                let error = randomRequestError()
                send(.subscriptionAnswered(e, unit: unit, .failure(error)), error: error, epoch: e)
            } else {
                send(.subscriptionAnswered(e, unit: unit, .success(())))
            }
        case 34..<44:
            guard let p = pendingStation.first else { return }
            answerStation(p.ticket, success: rng.below(5) != 0)
        case 44..<50:
            guard !timers.isEmpty else { return }
            let t = timers.remove(at: rng.below(timers.count))
            send(.timerFired(t))
        case 50..<64:
            guard let (e, _) = openStreams.first else { return }
            if rng.below(10) == 0 { send(.streamOpened(e)) }
            if allowShutdown, rng.below(20) == 0 { return send(.message(e, .failure(MessageDecodeError(field: "f", reason: "bad")))) }
            let message = randomMessage()
            if case .connectionStateChange(let m) = message, m.newConnectionState == .down { serverEnds(epoch: e) }
            send(.message(e, .success(message)))
        case 64..<67:
            guard let (e, _) = openStreams.first else { return }
            openStreams[e] = nil
            let error = rng.below(2) == 0 ? nil : randomRequestError()
            send(.streamEnded(e, error), error: error, epoch: e)
        case 67..<71:
            guard !pendingChecks.isEmpty else { return }
            let (e, _) = pendingChecks.removeFirst()
            switch rng.below(4) {
            case 0:
                serverEnds(epoch: e)
                send(.sessionChecked(e, .success(.init(state: .down, reason: "gone", shouldReconnect: rng.below(2) == 0))))
            case 1:
                let error = randomRequestError()
                send(.sessionChecked(e, .failure(error)), error: error, epoch: e)
            default: send(.sessionChecked(e, .success(.init(state: .up))))
            }
        case 71..<78:
            command(randomCommand())
        case 78..<81:
            send(.reconnect(coalesce: rng.below(3) != 0))
        case 81..<83:
            let t = machine.ticket()
            disconnects.insert(t)
            send(.disconnect(t))
        case 83..<85:
            var c = machine.configuration
            if rng.below(2) == 0 {
                c.subscriptions.alertingAttributeNames = rng.below(2) == 0 ? [] : ["Eic_RemoteName"]
                c.subscriptions.users = rng.below(3) == 0 ? nil : UsersSubscription(subscriptionId: "u\(rng.below(3))")
            } else {
                c.servers = rng.below(2) == 0 ? Self.servers : [Self.servers[1]]
            }
            send(.configure(c))
        case 85..<92:
            // Something from an ended session (an answer that raced its cancellation).
            guard let e = endedEpochs.last else { return }
            let before = (machine.status, machine.station)
            let events = staleEvents(epoch: e)
            let event = events[rng.below(events.count)]
            let actions = machine.handle(event, now: now, unit: rng.unit())
            staleEvents += 1
            check(actions.isEmpty, "the ended epoch \(e) acted: \(event) → \(actions)")
            check(machine.status == before.0 && machine.station == before.1, "the ended epoch \(e) changed the state")
        case 92..<94:
            // A request made outside the machine (station information) failed.
            guard let live = machine.current else { return }
            let error = randomRequestError()
            send(.requestFailed(live.epoch, error), error: error, epoch: live.epoch)
        case 95..<97:
            // A wake-up (suspend or network change) in any phase.
            send(.wake)
        case 97:
            guard let e = pendingFetches.first else { return }
            pendingFetches.removeFirst()
            send(.stationFetched(e, rng.below(2) == 0 ? .success(StationInformation()) : .failure(randomRequestError())))
        case 94:
            if allowShutdown, rng.below(20) == 0 {
                shutDown = true
                send(.shutdown)
            }
        default:
            return
        }
    }
}

/// What a set of walks went through.
struct Coverage: CustomStringConvertible {
    var sessions = 0, restores = 0, staleEvents = 0, commandsAnswered = 0, disconnects = 0, resumes = 0

    mutating func add(_ w: Walk) {
        sessions += w.sessionCount
        restores += w.restores
        staleEvents += w.staleEvents
        commandsAnswered += w.replies.count
        disconnects += w.completedDisconnects.count
        resumes += w.resumes
    }

    var description: String {
        "sessions \(sessions), restores \(restores), stale events \(staleEvents), commands answered \(commandsAnswered), disconnects \(disconnects), resumes \(resumes)"
    }
}

final class Outcome {
    var failure: String?
    /// The latest events and their actions, shown with a failure.
    var trace: [(SessionMachine.Event, [SessionMachine.Action])] = []
}

/// A seeded generator, so each walk replays from its seed.
struct Rng {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15) }
    mutating func below(_ n: Int) -> Int { Int(generator.next() % UInt64(max(n, 1))) }
    mutating func unit() -> Double { generator.nextUnit() }
}
