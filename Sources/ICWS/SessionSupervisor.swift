import Logging
import Synchronization

/// The session state as the bridge publishes it (`Session.State`).
public enum SessionState: UInt32, Sendable {
    case unknown = 0, connecting = 1, connected = 2, reconnecting = 3, stopped = 4

    public var name: String {
        switch self {
        case .unknown: return "unknown"
        case .connecting: return "connecting"
        case .connected: return "connected"
        case .reconnecting: return "reconnecting"
        case .stopped: return "stopped"
        }
    }
}

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
    case status(SessionStatus)
    case station(StationStatus)
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
public actor SessionSupervisor {
    enum Command: Sendable {
        /// A new session. Concurrent requests from callers (`coalesce`) share
        /// one login; a reload's (`coalesce: false`) always gets its own, with
        /// the new configuration.
        case reconnect(coalesce: Bool)
        case disconnect(@Sendable () -> Void)
        /// A request on session `sessionId` found it gone.
        case sessionFailed(sessionId: String, ICWSError)
        case resubscribe
    }

    enum SessionEnd: Sendable {
        case down(reason: String, shouldReconnect: Bool)
        case failed(ICWSError)
        case command(Command)
        case cancelled
    }

    /// The events, unless an `eventHandler` takes them (then this only ends with `run()`).
    public nonisolated let events: AsyncStream<SupervisorEvent>
    private let eventSink: AsyncStream<SupervisorEvent>.Continuation
    /// Called in order, on the supervisor, for every event: no task hop per message.
    private let eventHandler: (@Sendable (SupervisorEvent) -> Void)?
    private let mailbox = Mailbox<Command>()
    private var configuration: SupervisorConfiguration
    private let client: ICWSClient
    private let clock: any SupervisorClock
    private let random: @Sendable () -> Double
    private var logger: Logger

    private var session: ICWSSession?
    public private(set) var status = SessionStatus()
    public private(set) var station = StationStatus()
    /// When the current outage began (the backoff's clock); reset by a stable session.
    private var retry = Backoff(policy: BackoffPolicy())
    private var preferredBase: ServerURL?
    /// A session cut off by the network (not ended by the server): asked for
    /// first when the network is back, so that a blip does not leave an
    /// orphan session (and a licence) on the server.
    private var resumable: ICWSSession?
    private var learnedAlternates: [ServerURL] = []
    private var sessionsEstablished = 0
    private var activeUsersSubscription: String?
    /// Serializes station PUT/DELETE (client commands and the restore).
    private let stationLock = AsyncLock()

    public init(
        configuration: SupervisorConfiguration, client: ICWSClient, clock: any SupervisorClock = SystemSupervisorClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }, logger: Logger,
        eventHandler: (@Sendable (SupervisorEvent) -> Void)? = nil
    ) {
        self.eventHandler = eventHandler
        self.configuration = configuration
        self.client = client
        self.clock = clock
        self.random = random
        self.logger = logger
        station.requested = configuration.initialStation
        (events, eventSink) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
        status.userId = configuration.userId
        status.server = configuration.servers.first?.description ?? ""
    }

    // MARK: Commands from the bus

    /// A new session now, also from `stopped`.
    public nonisolated func reconnect() { mailbox.post(.reconnect(coalesce: true)) }

    /// Log out and stay `stopped` until `reconnect()`; returns once logged out.
    public func disconnect() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            mailbox.post(.disconnect({ c.resume() }))
        }
    }

    /// Applies a reloaded configuration: a new server, user or password means a
    /// new session; changed subscriptions are re-made on the current one.
    public func update(configuration new: SupervisorConfiguration) {
        let old = configuration
        configuration = new
        if old.servers != new.servers || old.userId != new.userId || old.password != new.password
            || old.messaging != new.messaging
        {
            preferredBase = nil
            learnedAlternates = []
            discardResumable()
            mailbox.post(.reconnect(coalesce: false))
        } else if old.subscriptions != new.subscriptions {
            mailbox.post(.resubscribe)
        }
    }

    public func connectStation(_ settings: StationSettings) async throws(ICWSError) {
        try await stationLock.withLock { () async throws(ICWSError) in
            let s = try requireSession()
            do throws(ICWSError) { try await client.putStation(s, settings) } catch { throw noteFailure(error, on: s) }
            station.requested = settings
            // An answer for a session that ended meanwhile says nothing of the
            // current one: the restore (waiting on this lock) applies `requested`.
            if isCurrent(s) {
                station.connected = true
                station.ready = settings.readyForInteractions
            }
            emit(.station(station))
        }
    }

    public func disconnectStation() async throws(ICWSError) {
        try await stationLock.withLock { () async throws(ICWSError) in
            let s = try requireSession()
            do throws(ICWSError) { try await client.deleteStation(s) } catch { throw noteFailure(error, on: s) }
            station.requested = nil
            if isCurrent(s) {
                station.connected = false
                station.ready = false
            }
            emit(.station(station))
        }
    }

    /// PUTs the last requested settings again with the new ready flag.
    public func setReady(_ ready: Bool) async throws(StationCommandError) {
        try await stationLock.withLock { () async throws(StationCommandError) in
            guard var settings = station.requested else { throw .noStation }
            let s: ICWSSession
            do throws(ICWSError) { s = try requireSession() } catch { throw .icws(error) }
            settings.readyForInteractions = ready
            do throws(ICWSError) { try await client.putStation(s, settings) } catch { throw .icws(noteFailure(error, on: s)) }
            station.requested = settings
            if isCurrent(s) {
                station.connected = true
                station.ready = ready
            }
            emit(.station(station))
        }
    }

    /// The station information including SIP credentials (for the softphone).
    public func stationInformation() async throws(StationCommandError) -> StationInformation {
        let s: ICWSSession
        do { s = try requireSession() } catch { throw .icws(error) }
        do { return try await client.getStation(s) } catch {
            if error.status == 404 { throw .noStation }
            throw .icws(noteFailure(error, on: s))
        }
    }

    /// True while `s` is the live session (answers for an ended one act on nothing).
    private func isCurrent(_ s: ICWSSession) -> Bool { session?.sessionId == s.sessionId }

    private func requireSession() throws(ICWSError) -> ICWSSession {
        guard let session, status.state == .connected else {
            throw ICWSError(kind: .notConnected, message: "no ICWS session now")
        }
        return session
    }

    /// A 401 or transport failure on a call means the session is gone: tell the loop.
    private func noteFailure(_ error: ICWSError, on s: ICWSSession) -> ICWSError {
        // A call cancelled because its session already ended says nothing new.
        if Task.isCancelled { return error }
        if error.status == 401 || error.kind == .transport {
            mailbox.post(.sessionFailed(sessionId: s.sessionId, error))
        }
        return error
    }

    // MARK: The loop

    /// Runs until the task is cancelled; logs out on the way out when configured.
    public func run() async {
        defer { eventSink.finish() }
        var waitForCommand = false
        while !Task.isCancelled {
            if waitForCommand {
                setState(.stopped)
                guard let cmd = await mailbox.next() else { break }
                switch cmd {
                case .reconnect:
                    waitForCommand = false
                    retry.reset()
                    discardResumable()
                    dropQueuedReconnects()
                case .disconnect(let done): done()
                case .sessionFailed, .resubscribe: break
                }
                continue
            }
            setState(sessionsEstablished == 0 ? .connecting : .reconnecting)
            let login: Result<ICWSSession, ICWSError>
            if let resumed = await resumeCutOffSession() {
                login = .success(resumed)
            } else {
                login = await loginRound()
                // The old session could not be reached and a new one is up: the
                // old one is logged out in the background (its host may be gone).
                if case .success = login { discardResumable() }
            }
            if Task.isCancelled { break }
            switch login {
            case .failure(let error):
                status.lastError = error.shortReason
                if Self.credentialsRejected(error) {
                    logger.error("login refused; waiting for Reconnect() or a reload", metadata: ["icws.error": "\(error)"])
                    waitForCommand = true
                    continue
                }
                logger.warning("login failed", metadata: ["icws.error": "\(error)"])
                if await backoff(reason: error.shortReason) == false { waitForCommand = true }
            case .success(let s):
                // Reconnect() calls that came while this login was under way are answered by it.
                dropQueuedReconnects()
                let started = clock.now()
                let end = await runSession(s)
                let stable = clock.now() - started >= configuration.stableAfter
                if stable { retry.reset() }
                session = nil
                station.connected = false
                emit(.station(station))
                switch end {
                case .cancelled:
                    await logoutOnExit(s)
                    setState(.stopped)
                    return
                case .down(let reason, let shouldReconnect):
                    status.lastError = reason.isEmpty ? "session down" : reason
                    logger.warning(
                        "session down", metadata: ["icws.reason": "\(reason)", "icws.should_reconnect": "\(shouldReconnect)"])
                    if !shouldReconnect {
                        waitForCommand = true
                    } else if await backoff(reason: status.lastError) == false {
                        waitForCommand = true
                    }
                case .failed(let error):
                    status.lastError = error.shortReason
                    if error.status == 401 {
                        let target = error.challenge?.loginBase(relativeTo: s.base) ?? s.base
                        if let refusal = configuration.locationPolicy.refusal(of: target, from: s.base) {
                            // The password never follows the server to plain http.
                            status.lastError = refusal
                            preferredBase = nil
                            logger.error("401 challenge refused", metadata: ["icws.error": "\(refusal)"])
                            if await backoff(reason: refusal) == false { waitForCommand = true }
                            continue
                        }
                        preferredBase = target
                        logger.info("session no longer valid; logging in again", metadata: ["icws.host": "\(target)"])
                        // First re-login after a stable session is immediate; a 401 loop backs off.
                        if !stable, await backoff(reason: error.shortReason) == false { waitForCommand = true }
                    } else {
                        logger.warning("session lost", metadata: ["icws.error": "\(error)"])
                        if error.kind == .transport || error.kind == .timeout { resumable = s }
                        if await backoff(reason: error.shortReason) == false { waitForCommand = true }
                    }
                case .command(let cmd):
                    switch cmd {
                    case .disconnect(let done):
                        await logout(s)
                        status.lastError = ""
                        waitForCommand = true
                        done()
                    case .reconnect:
                        await logout(s)
                        retry.reset()
                    case .sessionFailed, .resubscribe: break
                    }
                }
            }
        }
        if let s = session ?? resumable { await logoutOnExit(s) }
        setState(.stopped)
    }

    /// A new session was asked for: the cut-off one is logged out in the background.
    private func discardResumable() {
        guard let cutOff = resumable else { return }
        resumable = nil
        Task { await self.logout(cutOff) }
    }

    /// The session the network cut off, if the server says it is still up
    /// (nil also when there is none, or it is gone, or its host is still out
    /// of reach: then the caller logs in, walking the alternates).
    private func resumeCutOffSession() async -> ICWSSession? {
        guard let old = resumable else { return nil }
        do throws(ICWSError) {
            let state = try await client.connectionState(old)
            guard state.state == 1 else {
                resumable = nil
                return nil
            }
            resumable = nil
            // Failures reported while it was cut off are about the old connections.
            mailbox.removeAll { if case .sessionFailed(old.sessionId, _) = $0 { return true } else { return false } }
            logger.info("the network is back and the session still lives; resuming it", metadata: ["icws.host": "\(old.base)"])
            return old
        } catch {
            if error.kind != .transport && error.kind != .timeout { resumable = nil }
            return nil
        }
    }

    static func credentialsRejected(_ error: ICWSError) -> Bool {
        guard let status = error.status else { return false }
        return status == 400 || status == 401 || status == 403
    }

    /// Waits the next backoff delay; false when a disconnect arrived meanwhile.
    private func backoff(reason: String) async -> Bool {
        retry.policy = configuration.backoff
        let delay = retry.next(now: clock.now(), unit: random())
        status.retryIn = delay
        setState(.reconnecting)
        logger.info("retrying", metadata: ["icws.retry_in_ms": "\(Int(delay.seconds * 1000))", "icws.reason": "\(reason)"])
        let outcome: Command? = await withTaskGroup(of: Command?.self) { group in
            let clock = self.clock
            group.addTask {
                try? await clock.sleep(for: delay)
                return nil
            }
            let mailbox = self.mailbox
            group.addTask {
                // Late failure reports of the session that just ended change nothing
                // here (and a resubscribe happens anyway with the next session).
                while let command = await mailbox.next() {
                    switch command {
                    case .sessionFailed, .resubscribe: continue
                    case .reconnect, .disconnect: return command
                    }
                }
                return nil
            }
            // Whichever ends first cancels the other; a command that raced in is kept.
            var command: Command?
            for await result in group {
                if let result { command = result }
                group.cancelAll()
            }
            return command
        }
        status.retryIn = nil
        switch outcome {
        case .disconnect(let done)?:
            if let cutOff = resumable {
                resumable = nil
                await logout(cutOff)
            }
            done()
            return false
        case .reconnect?:
            retry.reset()
            discardResumable()
            return true
        default: return true
        }
    }

    /// One round over the candidate hosts: the preferred (challenge or last good)
    /// host, the configured servers, alternates learned at login and from 503s.
    private func loginRound() async -> Result<ICWSSession, ICWSError> {
        var candidates: [ServerURL] = []
        // Bounded: a chain of 503s that keeps naming new hosts ends the round.
        func add(_ u: ServerURL) { if candidates.count < 24, !candidates.contains(u) { candidates.append(u) } }
        if let preferredBase { add(preferredBase) }
        configuration.servers.forEach(add)
        learnedAlternates.forEach(add)
        var lastError = ICWSError(kind: .notConnected, message: "no server configured")
        var i = 0
        while i < candidates.count, !Task.isCancelled {
            let base = candidates[i]
            i += 1
            status.server = base.description
            do {
                let s = try await client.login(base: base, userId: configuration.userId, password: configuration.password)
                preferredBase = base
                learnedAlternates = alternates(s.alternateHosts, of: base)
                return .success(s)
            } catch {
                lastError = error
                if error.status == 503 {
                    alternates(error.alternateHosts, of: base).forEach(add)
                    continue
                }
                if Self.credentialsRejected(error) { return .failure(error) }
            }
        }
        return .failure(lastError)
    }

    /// `alternateHostList` entries as base URLs (same scheme and port), leaving
    /// out what is not a plain host name or address, or what the location policy refuses.
    private func alternates(_ hosts: [String], of base: ServerURL) -> [ServerURL] {
        var out: [ServerURL] = []
        for host in hosts.prefix(32) {
            guard let url = base.withHost(host), configuration.locationPolicy.refusal(of: url, from: base) == nil else {
                logger.warning("alternate host ignored: not a plain host name or address", metadata: ["icws.host": "\(host.prefix(80).debugDescription)"])
                continue
            }
            if !out.contains(url) { out.append(url) }
        }
        return out
    }

    /// Drops the queued `Reconnect()` requests of callers: the login that just
    /// started or succeeded answers them (a reload's request is kept).
    private func dropQueuedReconnects() {
        mailbox.removeAll { if case .reconnect(coalesce: true) = $0 { return true } else { return false } }
    }

    private func runSession(_ s: ICWSSession) async -> SessionEnd {
        session = s
        sessionsEstablished &+= 1
        if sessionsEstablished > 1 { status.reconnectCount &+= 1 }
        let useSSE: Bool
        switch configuration.messaging {
        case .auto: useSSE = s.featureVersion("messaging") >= 2
        case .sse: useSSE = true
        case .poll: useSSE = false
        }
        status.server = s.base.description
        status.userId = s.userId
        status.userDisplayName = s.userDisplayName
        status.messagingMode = useSSE ? "sse" : "poll"
        status.lastError = ""
        setState(.connected)
        logger.info(
            "session established",
            metadata: ["icws.host": "\(s.base)", "icws.user": "\(s.userId)", "icws.messaging": "\(status.messagingMode)"])

        return await withTaskGroup(of: SessionEnd?.self) { group in
            group.addTask { await self.runMessaging(s, sse: useSSE) }
            group.addTask {
                await self.restore(s)
                return nil
            }
            let mailbox = self.mailbox
            group.addTask { await mailbox.next().map { .command($0) } ?? .cancelled }
            var result: SessionEnd = .cancelled
            loop: while let next = await group.next() {
                guard let end = next else { continue }
                if case .command(let cmd) = end {
                    switch cmd {
                    case .sessionFailed(let id, let error):
                        if id == s.sessionId {
                            result = .failed(error)
                            break loop
                        }
                    case .resubscribe:
                        group.addTask {
                            await self.resubscribe(s)
                            return nil
                        }
                    case .reconnect, .disconnect:
                        result = end
                        break loop
                    }
                    group.addTask { await mailbox.next().map { .command($0) } ?? .cancelled }
                    continue
                }
                result = end
                break
            }
            group.cancelAll()
            // A command taken by the cancelled waiter is handed back, not lost.
            for await leftover in group {
                if case .command(let cmd)? = leftover {
                    if case .sessionFailed = cmd { continue }
                    mailbox.post(cmd)
                }
            }
            return result
        }
    }

    /// Re-subscribes and re-applies the last requested station after a new session.
    /// The station comes before the users subscription: an agent can take calls
    /// again without waiting for the server to build a large directory snapshot.
    private func restore(_ s: ICWSSession) async {
        await resubscribe(s, users: false)
        await restoreStation(s)
        await resubscribe(s, stationAndAlerting: false)
    }

    private func restoreStation(_ s: ICWSSession) async {
        // Under the station lock: a client command that came first has already
        // applied what it asked for, and one that comes later runs after this.
        await stationLock.withLock {
            guard let requested = station.requested, !Task.isCancelled, session?.sessionId == s.sessionId,
                !station.connected
            else { return }
            do throws(ICWSError) {
                try await client.putStation(s, requested)
                guard session?.sessionId == s.sessionId else { return }
                station.connected = true
                station.ready = requested.readyForInteractions
                emit(.station(station))
                logger.info("station restored", metadata: ["icws.station": "\(requested.workstation ?? requested.remoteNumber ?? requested.kind.rawValue)"])
            } catch {
                _ = noteFailure(error, on: s)
                status.lastError = error.shortReason
                emit(.status(status))
                logger.error("station could not be restored", metadata: ["icws.error": "\(error)"])
            }
        }
    }

    private func resubscribe(_ s: ICWSSession, stationAndAlerting: Bool = true, users: Bool = true) async {
        let subs = configuration.subscriptions
        do {
            if stationAndAlerting {
                try await client.subscribeStation(s)
                if subs.alertingAttributeNames.isEmpty {
                    try await client.unsubscribeAlerting(s)
                } else {
                    try await client.subscribeAlerting(s, attributeNames: subs.alertingAttributeNames)
                }
            }
            guard users else { return }
            if let old = activeUsersSubscription, old != subs.users?.subscriptionId, session?.sessionId == s.sessionId {
                try? await client.unsubscribeUsers(s, subscriptionId: old)
            }
            if let users = subs.users {
                try await client.subscribeUsers(s, users)
            }
            if isCurrent(s) { activeUsersSubscription = subs.users?.subscriptionId }
        } catch {
            _ = noteFailure(error, on: s)
            guard isCurrent(s) else { return }
            status.lastError = error.shortReason
            emit(.status(status))
            logger.error("subscription failed", metadata: ["icws.error": "\(error)"])
        }
    }

    private nonisolated func runMessaging(_ s: ICWSSession, sse: Bool) async -> SessionEnd {
        var streamRetry = Backoff(policy: BackoffPolicy())
        // Set after an interruption: messages in flight then are gone (ICWS has no
        // replay), so once messages flow again the subscriptions are made anew and
        // the server sends fresh isDelta:false snapshots.
        let resync = LockedValue(false)
        while !Task.isCancelled {
            let end: SessionEnd?
            let opened = clock.now()
            if sse {
                end = await streamOnce(s, resync: resync)
            } else {
                end = await pollLoop(s, resync: resync)
            }
            if let end { return end }
            if Task.isCancelled { return .cancelled }
            // The stream ended or broke but the session may still be alive: ask. A
            // transport error is tried once more, on a new connection (a reset can
            // take the pooled keep-alive connections with it).
            var answer: Result<(state: UInt32, reason: String, shouldReconnect: Bool?), ICWSError> = .failure(
                ICWSError(kind: .transport, message: "not asked"))
            for attempt in 0..<2 {
                do throws(ICWSError) {
                    answer = .success(try await client.connectionState(s))
                    break
                } catch {
                    answer = .failure(error)
                    guard error.kind == .transport, attempt == 0 else { break }
                    try? await loopSleep(for: .milliseconds(100))
                }
            }
            switch answer {
            case .success(let state) where state.state == 2:
                return .down(reason: state.reason, shouldReconnect: state.shouldReconnect ?? false)
            case .success: break
            case .failure(let error): return Task.isCancelled ? .cancelled : .failed(error)
            }
            // A stream that ran for a while was a good one: a new outage starts.
            if clock.now() - opened >= (await configuration.stableAfter) { streamRetry.reset() }
            streamRetry.policy = await configuration.backoff
            let delay = streamRetry.next(now: clock.now(), unit: random())
            do { try await clock.sleep(for: delay) } catch { return .cancelled }
            resync.set(true)
        }
        return .cancelled
    }

    /// Reads the SSE stream; nil means "ended without a verdict, check the session".
    private nonisolated func streamOnce(_ s: ICWSSession, resync: LockedValue<Bool>) async -> SessionEnd? {
        let verdict = LockedValue<SessionEnd?>(nil)
        let config = await configuration
        do {
            try await client.streamEvents(s, stallTimeout: config.stallTimeout, maxEventBytes: config.maxEventBytes) {
                output in
                // The new stream is open (the server sent its first bytes): the old one can take nothing more.
                if resync.update({ r in defer { r = false }; return r }) { await self.resubscribe(s) }
                guard case .event(let event) = output, verdict.get() == nil else { return }
                if let end = await self.deliver(data: event.data, from: s) {
                    verdict.set(end)
                }
            }
        } catch {
            if let v = verdict.get() { return v }
            if Task.isCancelled { return .cancelled }
            if error.status == 401 || error.status == 404 { return .failed(error) }
            await noteStreamError(error)
            return nil
        }
        return verdict.get()
    }

    private func noteStreamError(_ error: ICWSError) {
        status.lastError = error.shortReason
        emit(.status(status))
        logger.warning("message stream interrupted", metadata: ["icws.error": "\(error)"])
    }

    private nonisolated func pollLoop(_ s: ICWSSession, resync: LockedValue<Bool>) async -> SessionEnd? {
        let interval = await configuration.pollInterval
        while !Task.isCancelled {
            let results: [Result<ICWSMessage, MessageDecodeError>]
            do {
                results = try await client.poll(s)
                if resync.update({ r in defer { r = false }; return r }) { await resubscribe(s) }
            } catch {
                if Task.isCancelled { return .cancelled }
                if error.status == 401 || error.status == 404 { return .failed(error) }
                await noteStreamError(error)
                return nil
            }
            for r in results {
                if let end = await deliver(r, from: s) { return end }
            }
            do { try await loopSleep(for: interval) } catch { return .cancelled }
        }
        return .cancelled
    }

    private func deliver(data: [UInt8], from s: ICWSSession) -> SessionEnd? {
        do throws(MessageDecodeError) {
            return deliver(.success(try ICWSMessage.decode(text: data)), from: s)
        } catch {
            return deliver(.failure(error), from: s)
        }
    }

    /// Passes a message on; a connection-down message ends the session. A
    /// message of a session that has ended meanwhile is dropped.
    private func deliver(_ result: Result<ICWSMessage, MessageDecodeError>, from s: ICWSSession) -> SessionEnd? {
        guard isCurrent(s) else { return .cancelled }
        switch result {
        case .failure(let error):
            logger.warning("malformed message skipped", metadata: ["icws.error": "\(error)"])
            emit(.malformedMessage(error))
            return nil
        case .success(let message):
            // A delta that shows the station gone (taken over, removed by an admin) ends it here
            // too. Snapshots are ignored: one can arrive after a PUT already answered.
            if case .stationConnectionStateChange(let m) = message, m.isDelta, station.connected,
                station.requested?.kind != .stationless,
                (m.newStationInfo.id ?? "").isEmpty, (m.newStationInfo.stationSetting ?? 0) == 0
            {
                station.connected = false
                station.ready = false
                emit(.station(station))
            }
            emit(.message(message))
            if case .connectionStateChange(let m) = message, m.newConnectionState == 2 {
                return .down(reason: m.reason, shouldReconnect: m.shouldReconnect ?? false)
            }
            return nil
        }
    }

    /// Logs out, giving up after 3 s so that a stop stays quick when the server is gone.
    private func logout(_ s: ICWSSession) async {
        let client = self.client
        // Detached so that a cancelled caller still gets its logout out.
        await Task.detached {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await client.logout(s) }
                group.addTask { try? await loopSleep(for: .seconds(3)) }
                await group.next()
                group.cancelAll()
            }
        }.value
    }

    private func logoutOnExit(_ s: ICWSSession) async {
        guard configuration.logoutOnStop else { return }
        await logout(s)
        session = nil
    }

    private func setState(_ state: SessionState) {
        status.state = state
        if state != .reconnecting { status.retryIn = nil }
        emit(.status(status))
    }

    private func emit(_ event: SupervisorEvent) {
        if let eventHandler { eventHandler(event) } else { eventSink.yield(event) }
    }
}

/// Errors of the station commands.
public enum StationCommandError: Error, Sendable, Equatable {
    case noStation
    case icws(ICWSError)
}
