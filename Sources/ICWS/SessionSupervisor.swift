import Logging

/// Everything the bridge shows about the session. Holds no secret.
public struct SessionStatus: Sendable, Equatable {
    public var state: SessionState = .unknown
    public var server: String = ""
    public var userId: String = ""
    public var userDisplayName: String = ""
    public var messagingMode: String = ""
    public var lastError: String = ""
    public var reconnectCount: UInt32 = 0
    /// Set while waiting before the next attempt.
    public var retryIn: Duration?
    /// The login's `features`: featureId → version.
    public var features: [String: Int] = [:]
    /// Each subscription unit by name: 0 none, 1 normal, 2 suspended, 3 faulted.
    public var subscriptions: [String: UInt32] = [:]
    /// Counts the sessions established (1 for the first); a new value is a new session.
    public var sessionSerial: UInt64 = 0
    public init() {}
}

/// The station as the server last accepted it.
public struct StationStatus: Sendable, Equatable {
    public var connected: Bool = false
    public var ready: Bool = false
    /// The last requested settings (re-applied after every new session).
    public var requested: StationSettings?
    public init() {}
}

public enum SupervisorEvent: Sendable {
    /// The session and the station as they are now (sent when either changed).
    /// The machine holds the one copy; the bus side renders it into properties.
    case state(SessionStatus, StationStatus)
    case message(ICWSMessage)
    case malformedMessage(MessageDecodeError)
}

/// Settings of the supervisor; `Sendable` plain values with defaults.
public struct SupervisorConfiguration: Sendable {
    /// The configured servers, tried in order.
    public var servers: [ServerURL]
    public var userId: String
    public var password: Secret
    public var messaging: MessagingMode = .auto
    public var pollInterval: Duration = .seconds(1)
    /// No byte (event or keep-alive) on the stream for this long ends it.
    public var stallTimeout: Duration = .seconds(90)
    public var maxEventBytes: Int = 64 << 20
    public var backoff = BackoffPolicy()
    /// A session that lived this long ends the outage: the backoff starts over.
    public var stableAfter: Duration = .seconds(30)
    public var subscriptions = SubscriptionSettings()
    /// Station settings to apply when nobody asked for any yet.
    public var initialStation: StationSettings?
    public var logoutOnStop = true
    /// What a server-supplied location may do (see `LocationPolicy`).
    public var locationPolicy = LocationPolicy(allowInsecureHTTP: false)

    public init(servers: [ServerURL], userId: String, password: Secret) {
        // Configured http servers mean allow-insecure-http (the configuration refuses them otherwise).
        locationPolicy = LocationPolicy(allowInsecureHTTP: servers.contains { $0.scheme == "http" })
        self.servers = servers
        self.userId = userId
        self.password = password
    }
}

/// Holds one ICWS session and keeps it alive: logs in (walking alternates on
/// 503), streams or polls messages, follows 401 challenges, reconnects with
/// jittered backoff when the server says `shouldReconnect`, and restores
/// subscriptions, station and ready flag on every new session.
///
/// The decisions are `SessionMachine`'s; this actor only performs its
/// actions (requests, timers, events) and feeds the answers back.
public actor SessionSupervisor {
    typealias Machine = SessionMachine

    /// Where every event goes, in order, on the supervisor: no task hop per
    /// message. It also runs the handling of one read's messages (so that
    /// what they publish is sent on together), and is awaited after each
    /// read before the next, so that a server faster than the bus is held
    /// back by TCP instead of filling memory.
    private let sink: any SupervisorEventSink
    private let client: ICWSClient
    private let clock: any SupervisorClock
    private let random: (@Sendable () -> Double)?
    /// The jitter's draws when no `random` is given: a cheap generator seeded once.
    private var generator = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
    private var logger: Logger
    private var machine: Machine
    /// Kept between events so that handling one allocates nothing.
    private var actionBuffer: [Machine.Action] = []
    /// Requests and streams under way; those of a session are cancelled when it ends.
    private var work: [UInt64: (epoch: Machine.Epoch?, task: Task<Void, Never>)] = [:]
    private var workIds: UInt64 = 0
    private var timers: [Machine.Ticket: Task<Void, Never>] = [:]
    private var disconnectWaiters: [Machine.Ticket: CheckedContinuation<Void, Never>] = [:]
    private var stationWaiters: [Machine.Ticket: CheckedContinuation<Result<Void, StationCommandError>, Never>] = [:]
    private var finishWaiter: CheckedContinuation<Void, Never>?

    public var status: SessionStatus { machine.status }
    public var station: StationStatus { machine.station }

    public init(
        configuration: SupervisorConfiguration, client: ICWSClient, clock: any SupervisorClock = SystemSupervisorClock(),
        random: (@Sendable () -> Double)? = nil, units: [SubscriptionUnit] = SubscriptionUnit.standard, logger: Logger,
        events sink: any SupervisorEventSink
    ) {
        self.sink = sink
        self.client = client
        self.clock = clock
        self.random = random
        self.logger = logger
        machine = Machine(configuration: configuration, units: units)
    }

    // MARK: Commands

    /// A new session now, also from `stopped`.
    public nonisolated func reconnect() {
        Task { await self.handle(.reconnect(coalesce: true)) }
    }

    /// The machine woke from a suspend or the network changed: check the
    /// session at once on fresh connections and reopen the stream.
    public nonisolated func wake() {
        Task { await self.handle(.wake) }
    }

    /// Log out and stay `stopped` until `reconnect()`; returns once logged out.
    public func disconnect() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let t = machine.ticket()
            disconnectWaiters[t] = c
            handle(.disconnect(t))
        }
    }

    /// Applies a reloaded configuration: a new server, user or password means a
    /// new session; changed subscriptions are re-made on the current one.
    public func update(configuration new: SupervisorConfiguration) {
        handle(.configure(new))
    }

    public func connectStation(_ settings: StationSettings) async throws(ICWSError) {
        if case .failure(let e) = await stationCommand(.connect(settings)) { throw e.icwsError }
    }

    public func disconnectStation() async throws(ICWSError) {
        if case .failure(let e) = await stationCommand(.disconnect) { throw e.icwsError }
    }

    /// PUTs the last requested settings again with the new ready flag.
    public func setReady(_ ready: Bool) async throws(StationCommandError) {
        if case .failure(let e) = await stationCommand(.setReady(ready)) { throw e }
    }

    private func stationCommand(_ command: Machine.StationCommand) async -> Result<Void, StationCommandError> {
        await withCheckedContinuation { (c: CheckedContinuation<Result<Void, StationCommandError>, Never>) in
            let t = machine.ticket()
            stationWaiters[t] = c
            handle(.stationCommand(t, command))
        }
    }

    /// The station information including SIP credentials (for the softphone).
    public func stationInformation() async throws(StationCommandError) -> StationInformation {
        guard let (s, epoch) = machine.current else {
            throw .icws(ICWSError(kind: .notConnected, message: "no ICWS session now"))
        }
        do { return try await client.getStation(s) } catch {
            if error.status == 404 { throw .serverHasNoStation(error) }
            // A call cancelled because its session already ended says nothing new.
            if !Task.isCancelled { handle(.requestFailed(epoch, error)) }
            throw .icws(error)
        }
    }

    /// One request on the live session (interaction actions, creating a
    /// call), answering the parsed body. Like any request of the session's, a
    /// 401 or a broken connection ends the session.
    public func request(_ request: ICWSRequest) async throws(ICWSError) -> JSONValue? {
        guard let (s, epoch) = machine.current else { throw ICWSError(kind: .notConnected, message: "no ICWS session now") }
        do { return try await client.call(s, request) } catch {
            if !Task.isCancelled { handle(.requestFailed(epoch, error)) }
            throw error
        }
    }

    /// The user's workgroups as read on session `session` (a later session ignores them).
    public func setWorkgroups(_ ids: [String], session: UInt64) {
        handle(.workgroups(session: session, ids))
    }

    // MARK: Running

    /// Runs until the task is cancelled; logs out on the way out when configured.
    public func run() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                finishWaiter = c
                handle(.start)
            }
        } onCancel: {
            Task { await self.handle(.shutdown) }
        }
    }

    /// The messages of one read, one after the other, in one turn of the
    /// actor, inside `batch` (which lets the bus side send them with one wake-up).
    private func handle(messages: [Result<ICWSMessage, MessageDecodeError>], of e: Machine.Epoch) {
        let run = { for m in messages { self.handle(.message(e, m)) } }
        sink.coalescing(run)
    }

    private func handle(_ event: Machine.Event) {
        var actions = actionBuffer
        actionBuffer = []
        let unit: Double
        if let random { unit = random() } else { unit = generator.nextUnit() }
        machine.handle(event, now: clock.now(), unit: unit, into: &actions)
        for action in actions { perform(action) }
        actions.removeAll(keepingCapacity: true)
        actionBuffer = actions
    }

    private func perform(_ action: Machine.Action) {
        let client = self.client
        switch action {
        case .login(let t, let base, let userId, let password):
            spawn(epoch: nil) {
                .loginAnswered(t, base: base, await Self.result { () async throws(ICWSError) in
                    try await client.login(base: base, userId: userId, password: password)
                })
            }
        case .checkResumable(let t, let s):
            spawn(epoch: nil) { .resumeAnswered(t, await Self.check(client, s)) }
        case .checkSession(let e, let s):
            spawn(epoch: e) { .sessionChecked(e, await Self.check(client, s)) }
        case .logout(let s, let t):
            // Not cancelled with the session: a stop still gets its logout out.
            Task {
                await Self.logout(client, s)
                if let t { self.handle(.loggedOut(t)) }
            }
        case .openMessages(let e, let s, let sse):
            let c = machine.configuration
            let source = MessageSource(
                client: client, sse: sse, pollInterval: c.pollInterval, stallTimeout: c.stallTimeout,
                maxEventBytes: c.maxEventBytes)
            let sink = self.sink
            spawn(epoch: e) {
                let error = await source.run(s, opened: { await self.handle(.streamOpened(e)) }) { messages in
                    await self.handle(messages: messages, of: e)
                    await sink.waitForRoom()
                }
                return .streamEnded(e, error)
            }
        case .subscribe(let e, let s, let unit, let unsubscribe, let request):
            spawn(epoch: e) {
                if let unsubscribe {
                    _ = try? await client.call(s, .unsubscribe(unsubscribe))
                }
                var result: Result<Void, ICWSError> = .success(())
                if let request {
                    result = await Self.result { () async throws(ICWSError) in
                        try await client.call(s, .subscribe(request.path, body: request.body))
                    }.map { _ in () }
                }
                return .subscriptionAnswered(e, unit: unit, result)
            }
        case .station(let t, let s, let request):
            // Not cancelled with the session: a command's caller gets the server's answer.
            spawn(epoch: nil) {
                .stationAnswered(t, await Self.result { () async throws(ICWSError) in
                    switch request {
                    case .put(let settings): try await client.putStation(s, settings)
                    case .delete: try await client.deleteStation(s)
                    }
                })
            }
        case .startTimer(let t, let kind, let delay):
            let clock = self.clock
            timers[t] = Task {
                do {
                    // The check's short pause is real time; the waits the tests count are the clock's.
                    if kind == .checkRetry { try await loopSleep(for: delay) } else { try await clock.sleep(for: delay) }
                } catch { return }
                guard self.timers.removeValue(forKey: t) != nil else { return }
                self.handle(.timerFired(t))
            }
        case .cancelTimer(let t):
            timers.removeValue(forKey: t)?.cancel()
        case .endSessionWork(let e):
            for (id, w) in work where w.epoch == e {
                w.task.cancel()
                work[id] = nil
            }
        case .publish(let event):
            sink.handle(event)
        case .replyStation(let t, let result):
            stationWaiters.removeValue(forKey: t)?.resume(returning: result)
        case .completeDisconnect(let t):
            disconnectWaiters.removeValue(forKey: t)?.resume()
        case .log(let level, let message, let metadata):
            logger.log(level: level, "\(message)", metadata: metadata)
        case .refreshConnections:
            client.freshConnections()
        case .fetchStation(let e, let s):
            spawn(epoch: e) { .stationFetched(e, await Self.result { () async throws(ICWSError) in try await client.getStation(s) }) }
        case .finished:
            for w in work.values { w.task.cancel() }
            work = [:]
            for t in timers.values { t.cancel() }
            timers = [:]
            // Nobody is left to answer these (the machine answered what it knew of).
            for c in stationWaiters.values {
                c.resume(returning: .failure(.icws(ICWSError(kind: .notConnected, message: "the bridge is stopping"))))
            }
            stationWaiters = [:]
            for c in disconnectWaiters.values { c.resume() }
            disconnectWaiters = [:]
            finishWaiter?.resume()
            finishWaiter = nil
        }
    }

    /// Runs `body` off the actor and hands its event (unless cancelled) to the machine.
    private func spawn(epoch: Machine.Epoch?, _ body: @escaping @Sendable () async -> Machine.Event) {
        workIds &+= 1
        let id = workIds
        work[id] = (epoch, Task {
            let event = await body()
            // Cancelled work was ended by the machine: its answer is not waited for.
            guard self.work.removeValue(forKey: id) != nil else { return }
            self.handle(event)
        })
    }

    private static func result<T>(_ body: () async throws(ICWSError) -> T) async -> Result<T, ICWSError> {
        do throws(ICWSError) { return .success(try await body()) } catch { return .failure(error) }
    }

    private static func check(_ client: ICWSClient, _ s: ICWSSession) async -> Result<Machine.ConnectionCheck, ICWSError> {
        await result { () async throws(ICWSError) in
            let answer = try await client.connectionState(s)
            return Machine.ConnectionCheck(state: answer.state, reason: answer.reason, shouldReconnect: answer.shouldReconnect)
        }
    }

    /// Logs out, giving up after 3 s so that a stop stays quick when the server is gone.
    private static func logout(_ client: ICWSClient, _ s: ICWSSession) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await client.logout(s) }
            group.addTask { try? await loopSleep(for: .seconds(3)) }
            await group.next()
            group.cancelAll()
        }
    }
}

/// Errors of the station commands.
public enum StationCommandError: Error, Sendable, Equatable {
    case noStation
    /// The server answered 404 for the station: it has none for this session.
    case serverHasNoStation(ICWSError)
    case icws(ICWSError)

    var icwsError: ICWSError {
        switch self {
        case .icws(let e), .serverHasNoStation(let e): return e
        case .noStation: return ICWSError(kind: .notConnected, message: "no station connected")
        }
    }
}
