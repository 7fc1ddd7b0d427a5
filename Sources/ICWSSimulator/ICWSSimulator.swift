import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import ICWSProtocol
import Logging
import NIOCore
import Synchronization

/// Settings of the simulator.
public struct SimulatorConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port.
    public var port = 0
    /// userID → password.
    public var accounts: [String: String] = ["agent": "secret"]
    /// The `messaging` feature version reported at login (2 or more: SSE).
    public var messagingVersion = 2
    /// Workstation names that exist.
    public var stations: Set<String> = ["7001", "7002", "7003"]
    /// Stations whose PUT fails with `noLicense`.
    public var noLicenseStations: Set<String> = []
    /// `alternateHostList` of a successful login.
    public var alternateHosts: [String] = []
    /// Users in the directory (besides the accounts).
    public var directorySize = 25
    /// `:ping` comment interval on idle streams.
    public var keepAlive: Duration = .seconds(10)
    /// Random traffic: messages per second over all kinds; 0 for none.
    public var trafficRate: Double = 0
    public var seed: UInt64 = 1
    /// Serve HTTPS with this PEM certificate chain and private key (else plain HTTP).
    public var tls: (certificateChain: String, privateKey: String)?
    /// The workgroups (contract v1.2's membership, wrap-up codes, activations, figures).
    public var workgroups = SimWorkgroup.standard
    /// Wrap-up code id → label.
    public var wrapUpLabels = SimWorkgroup.standardLabels

    public init() {}
}

/// A fake ICWS server on a real HTTP port (Hummingbird) speaking the subset of
/// ICWS the bridge uses, with fault injection and a delivery log in which
/// every message carries a sequence number.
public final class ICWSSimulator: Sendable {
    public let configuration: SimulatorConfiguration
    let logger: Logger
    struct Global: Sendable {
        var sessions: [String: SimSession] = [:]
        var nextSession: UInt64 = 1_000_001
        var sequence: UInt64 = 0
        var requests: [SimRequest] = []
        var deliveries: [SimDelivery] = []
        var recordDeliveries = true
        /// How long a station PUT waits before it is applied and answered (tests of late answers).
        var stationDelay: Duration = .zero
        var unavailable: (alternates: [String], acceptHosts: [String], count: Int?)?
        var refuseUntil: ContinuousClock.Instant?
        /// `.outage`: logins get 503 notAcceptingConnections until then.
        var busyUntil: ContinuousClock.Instant?
        var busyRetryAfter: String?
        var requestFailures: [RequestFailure] = []
        var expired: [String: (challenge: Bool, location: String?)] = [:]
        var stallUntil: ContinuousClock.Instant?
        /// Every event stream gets the next number when it opens.
        var streamSerial: UInt64 = 0
        /// `.silentStreams`: streams numbered up to this send nothing (0: none).
        var silentThrough: UInt64 = 0
        var alerting: [String: JSONValue] = [:]
        var alertingOrder: [String] = []
        var nextInteraction: UInt64 = 100_000
        var directory: [(id: String, props: [(String, JSONValue)])] = []
        var rng: SplitMix64
        var loginCount = 0
        var lastUsersSnapshotAt: ContinuousClock.Instant?
        var stopped = false
        var traffic: Task<Void, Never>?
    }
    let global: Mutex<Global>
    /// The users' interactions. Lock order: `calls`, then `status`, then `global`, then a session's.
    let calls: Mutex<CallState>
    /// The status catalogue and the users' statuses (they outlive sessions).
    let status: Mutex<StatusState>
    private let runningTask = Mutex<Task<Void, any Error>?>(nil)
    /// How many pumps are silent right now (sessions may be gone; this is counted apart).
    let silentPumps = Mutex<Int>(0)
    private let boundPort = Mutex<Int>(0)

    public init(configuration: SimulatorConfiguration = SimulatorConfiguration(), logger: Logger = Logger(label: "icws-sim")) {
        self.configuration = configuration
        var logger = logger
        logger.logLevel = .warning
        self.logger = logger
        var g = Global(rng: SplitMix64(seed: configuration.seed))
        let statuses = ["Available", "Away", "Lunch", "Do Not Disturb", "In a Meeting"]
        for i in 1...max(configuration.directorySize, 1) {
            let id = String(format: "user%04d", i)
            g.directory.append(
                (
                    id,
                    [
                        ("displayName", .string("User \(i)")), ("extension", .string(String(8000 + i))),
                        ("statusText", .string(statuses[i % statuses.count])),
                    ]
                ))
        }
        for account in configuration.accounts.keys.sorted() {
            g.directory.append((account, [("displayName", .string(account.capitalized)), ("extension", "7000"), ("statusText", "Available")]))
        }
        global = Mutex(g)
        calls = Mutex(CallState(rng: SplitMix64(seed: configuration.seed ^ 0xCA11_CA11_CA11_CA11)))
        status = Mutex(
            StatusState(accounts: configuration.accounts.keys.sorted(), changed: Self.compactUTC(), rng: SplitMix64(seed: configuration.seed ^ 0x5747_5715_5747_5715)))
    }

    public var port: Int { boundPort.withLock { $0 } }
    public var baseURL: String { "\(configuration.tls == nil ? "http" : "https")://\(configuration.host):\(port)" }

    /// Starts listening; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let (portStream, portCont) = AsyncStream<Int>.makeStream()
        let responder = CallbackResponder<BasicRequestContext> { [self] request, _ in
            try await self.handle(request)
        }
        let server: HTTPServerBuilder
        if let tls = configuration.tls {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateChain).map { NIOSSLCertificateSource.certificate($0) }
                let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
                server = try .tls(tlsConfiguration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
            } catch {
                throw SimulatorError(message: "cannot load the TLS certificate or key: \(error)")
            }
        } else {
            server = .http1()
        }
        let app = Application(
            responder: responder,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "icws-sim"),
            onServerRunning: { channel in
                portCont.yield(channel.localAddress?.port ?? 0)
                portCont.finish()
            },
            logger: logger)
        let task = Task { try await app.run() }
        runningTask.withLock { $0 = task }
        var port = 0
        for await p in portStream {
            port = p
            break
        }
        if port == 0 {
            task.cancel()
            _ = try await task.value
            throw SimulatorError(message: "could not listen on \(configuration.host):\(configuration.port)")
        }
        boundPort.withLock { $0 = port }
        if configuration.trafficRate > 0 {
            let rate = configuration.trafficRate
            let traffic = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1 / rate))
                    self?.randomTraffic()
                }
            }
            global.withLock { $0.traffic = traffic }
            let combined = Task {
                await withTaskCancellationHandler {
                    _ = try? await task.value
                } onCancel: {
                    task.cancel()
                    traffic.cancel()
                }
            }
            runningTask.withLock { $0 = Task { await combined.value } }
        }
        return port
    }

    /// Runs until cancelled (for the `icws-sim` executable).
    public func run() async throws {
        try await start()
        let task = runningTask.withLock { $0 }
        try await withTaskCancellationHandler {
            _ = try await task?.value
        } onCancel: {
            task?.cancel()
        }
    }

    /// Stops serving: every session ends, every stream closes, and every later
    /// request gets 503. The listener itself stays until the process exits:
    /// tearing a Hummingbird server down while a connection is being accepted
    /// can trap inside NIO (an async writer dropped unfinished), which would
    /// take a whole test run with it.
    public func stop() async {
        let sessions = global.withLock { g -> [SimSession] in
            g.stopped = true
            g.traffic?.cancel()
            g.traffic = nil
            defer { g.sessions.removeAll() }
            return Array(g.sessions.values)
        }
        sessions.forEach { $0.end() }
    }

    var isStopped: Bool { global.withLock { $0.stopped } }

    // MARK: Inspection for tests

    public var requests: [SimRequest] { global.withLock { $0.requests } }
    public var deliveries: [SimDelivery] { global.withLock { $0.deliveries } }
    public var loginCount: Int { global.withLock { $0.loginCount } }
    /// When the newest users snapshot (isDelta false) was queued.
    public var lastUsersSnapshotAt: ContinuousClock.Instant? { global.withLock { $0.lastUsersSnapshotAt } }
    public var liveSessionIds: [String] {
        global.withLock { g in g.sessions.values.filter { $0.mutable.withLock { $0.alive } }.map(\.id).sorted() }
    }

    /// The station settings of the newest live session.
    public var currentStation: StationSettings? {
        newestLiveSession()?.mutable.withLock { $0.station }
    }

    /// Streams being written, silent ones (`.silentStreams`) included.
    public var openStreamCount: Int {
        global.withLock { g in g.sessions.values.reduce(0) { $0 + $1.mutable.withLock { $0.openStreams } } }
    }

    /// Streams that `.silentStreams` keeps silent and open.
    public var silentStreamCount: Int { silentPumps.withLock { $0 } }

    func newestLiveSession() -> SimSession? {
        global.withLock { g in
            g.sessions.values.filter { $0.mutable.withLock { $0.alive } }.max(by: { $0.id.count == $1.id.count ? $0.id < $1.id : $0.id.count < $1.id.count })
        }
    }

    public func setRecordDeliveries(_ on: Bool) { global.withLock { $0.recordDeliveries = on } }

    /// Makes every station PUT wait `delay` before it is applied and answered.
    public func setStationDelay(_ delay: Duration) { global.withLock { $0.stationDelay = delay } }
    var stationDelay: Duration { global.withLock { $0.stationDelay } }

    // MARK: Faults and traffic

    public func inject(_ fault: SimFault) {
        switch fault {
        case .down(let shouldReconnect, let reason):
            for s in allLiveSessions() {
                var msg: [(String, JSONValue)] = [
                    ("__type", .string(ICWSMessage.TypeURN.connectionStateChange)), ("isDelta", false),
                    ("previousConnectionState", .enumValue(ConnectionState.up)), ("newConnectionState", .enumValue(ConnectionState.down)), ("reason", .string(reason)),
                ]
                if let shouldReconnect { msg.append(("shouldReconnect", .bool(shouldReconnect))) }
                enqueue(.object(msg), to: s)
                s.mutable.withLock {
                    $0.alive = false
                    $0.downState = (reason, shouldReconnect)
                }
            }
        case .expire(let challenge, let location):
            let sessions = allLiveSessions()
            global.withLock { g in
                for s in sessions { g.expired[s.id] = (challenge, location) }
            }
            sessions.forEach { $0.end() }
        case .unavailable(let alternates, let acceptHosts, let count):
            global.withLock { $0.unavailable = (alternates, acceptHosts, count) }
        case .resetStreams:
            for s in allLiveSessions() {
                s.mutable.withLock { $0.streamGeneration += 1 }
                s.queue.wake()
            }
        case .stall(let d):
            global.withLock { $0.stallUntil = .now + d }
        case .malformed:
            for s in allLiveSessions() {
                enqueueRaw(#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":tru"#, type: "malformed", to: s)
                enqueue(
                    [
                        "__type": .string(ICWSMessage.TypeURN.interactionAlerting), "isDelta": true,
                        "alertingInteractionDetails": [["interactionType": "Call", "alertAction": "sideways"]],
                    ], to: s)
            }
        case .huge(let bytes):
            let blob = String(repeating: "x", count: max(bytes - 200, 1))
            for s in allLiveSessions() {
                let subId = s.mutable.withLock { $0.usersSubscriptions.keys.sorted().first } ?? "none"
                enqueue(
                    [
                        "__type": .string(ICWSMessage.TypeURN.users), "isDelta": true, "subscriptionId": .string(subId),
                        "changed": [["configurationId": ["id": "user0001", "displayName": "User 1"], "notes": .string(blob)]],
                    ], to: s)
            }
        case .unknownMessage:
            for s in allLiveSessions() {
                enqueue(["__type": "urn:inin.com:example:notKnownMessage", "isDelta": true, "userStatusList": []], to: s)
            }
        case .restart(let downFor):
            let sessions = global.withLock { g -> [SimSession] in
                defer {
                    g.sessions.removeAll()
                    g.refuseUntil = .now + downFor
                }
                return Array(g.sessions.values)
            }
            sessions.forEach { $0.end() }
        case .queueSnapshotMissing:
            calls.withLock { $0.snapshotMissing = true }
        case .queueFaulted:
            faultQueueSubscriptions()
        case .queueOddValues:
            sendOddQueueValues()
        case .statusCompletionError:
            status.withLock { $0.nextPutFault = .completionError }
        case .statusNoCompletion:
            status.withLock { $0.nextPutFault = .noCompletion }
        case .statusImmediate:
            status.withLock { $0.nextPutFault = .immediate }
        case .subscriptionFaulted(let suffix):
            faultSubscription(suffix)
        case .silentStreams:
            global.withLock { $0.silentThrough = $0.streamSerial }
        case .outage(let downFor, let retryAfter):
            global.withLock {
                $0.busyUntil = .now + downFor
                $0.busyRetryAfter = retryAfter
            }
            inject(.down(shouldReconnect: true, reason: "The server is restarting."))
        case .failRequests(let method, let pathContains, let status, let count, let body):
            global.withLock {
                $0.requestFailures.append(
                    RequestFailure(method: method?.uppercased(), pathContains: pathContains.lowercased(), status: status, count: count, body: body))
            }
        case .statusCompletionErrorValue(let value):
            status.withLock { $0.nextPutFault = .completionErrorValue(value) }
        case .clear:
            global.withLock {
                $0.busyUntil = nil
                $0.busyRetryAfter = nil
                $0.requestFailures = []
                $0.unavailable = nil
                $0.refuseUntil = nil
                $0.stallUntil = nil
                $0.silentThrough = 0
            }
            calls.withLock { $0.snapshotMissing = false }
            status.withLock { $0.nextPutFault = nil }
        }
    }

    /// Starts an alerting call for every live session's user; returns the interaction id.
    @discardableResult
    public func startAlerting(name: String = "ACME Corp", address: String = "+13175550123") -> String {
        let (id, detail) = global.withLock { g -> (String, JSONValue) in
            g.nextInteraction += 1
            let id = String(g.nextInteraction)
            let detail: JSONValue = [
                "interactionId": .string(id), "interactionType": "Call", "name": .string(name),
                "address": .string(address), "alertType": .enumValue(AlertType.acdUser), "alertAction": .enumValue(AlertAction.startAlerting), "autoAnswer": false,
                "monitoredQueue": ["queueType": 2, "queueName": "Support"],
                "attributes": ["Eic_RemoteName": .string(name), "Eic_WorkgroupName": "Support"],
            ]
            g.alerting[id] = detail
            g.alertingOrder.append(id)
            return (id, detail)
        }
        broadcastAlerting([detail])
        return id
    }

    /// Stops alerting the given interaction (or the oldest one).
    public func stopAlerting(_ interactionId: String? = nil) {
        let detail = global.withLock { g -> JSONValue? in
            guard let id = interactionId ?? g.alertingOrder.first, var d = g.alerting.removeValue(forKey: id) else {
                return nil
            }
            g.alertingOrder.removeAll { $0 == id }
            if case .object(var members) = d {
                members.removeAll { $0.0 == "alertAction" }
                members.append(("alertAction", .enumValue(AlertAction.stopAlerting)))
                d = .object(members)
            }
            return d
        }
        if let detail { broadcastAlerting([detail]) }
    }

    private func broadcastAlerting(_ details: [JSONValue]) {
        for s in allLiveSessions() where s.mutable.withLock({ $0.alertingAttributes != nil }) {
            enqueue(
                [
                    "__type": .string(ICWSMessage.TypeURN.interactionAlerting), "isDelta": true,
                    "alertingInteractionDetails": .array(details),
                ], to: s)
        }
    }

    /// Changes one user's property and tells every users subscription that covers it.
    public func changeUser(_ id: String, property: String, value: JSONValue) {
        let displayName = global.withLock { g -> String? in
            guard let i = g.directory.firstIndex(where: { $0.id == id }) else { return nil }
            g.directory[i].props.removeAll { $0.0 == property }
            g.directory[i].props.append((property, value))
            return g.directory[i].props.first(where: { $0.0 == "displayName" })?.1.stringValue
        }
        guard let displayName else { return }
        for s in allLiveSessions() {
            let subs = s.mutable.withLock { $0.usersSubscriptions }
            for (subId, sub) in subs.sorted(by: { $0.key < $1.key })
            where (sub.configurationIds.contains("*") || sub.configurationIds.contains(id))
                && (sub.properties.contains("*") || sub.properties.contains(property))
            {
                enqueue(
                    [
                        "__type": .string(ICWSMessage.TypeURN.users), "isDelta": true, "subscriptionId": .string(subId),
                        "changed": [["configurationId": ["id": .string(id), "displayName": .string(displayName)], property: value]],
                    ], to: s)
            }
        }
    }

    /// Tells every live session of `user` that has the station subscription its
    /// effective station (`effectiveStationChangeMessage`; null without a station).
    public func changeEffectiveStation(user: String = "agent") {
        for s in allLiveSessions() where Self.sameUser(s.userId, user) {
            let (subscribed, station) = s.mutable.withLock { ($0.stationSubscribed, $0.station) }
            guard subscribed else { continue }
            var id: String?
            if let station {
                switch station.kind {
                case .workstation, .remoteWorkstation: id = station.workstation
                case .remoteNumber: id = station.remoteNumber
                case .stationless: id = nil
                }
            }
            var effective: JSONValue = nil
            if let id {
                effective = ["stationId": ["id": .string(id), "displayName": .string(id), "uri": .string("/configuration/stations/\(id)")]]
            }
            enqueue(["__type": .string(Self.effectiveStationChangeURN), "isDelta": true, "effectiveStation": effective], to: s)
        }
    }

    static let effectiveStationChangeURN = "urn:inin.com:connection:effectiveStationChangeMessage"

    /// Queues a raw message (any JSON) to every live session; returns the
    /// `simSequence` numbers it got (one per live session).
    @discardableResult
    public func emit(_ message: JSONValue) -> [UInt64] {
        allLiveSessions().compactMap { enqueue(message, to: $0) }
    }

    /// Messages serialized ahead of time by `prepare`, so that sending them
    /// with `emit(_:)` costs icws-sim only the queueing and the socket
    /// writes. The bench's maximum-rate burst uses them: it measures the
    /// bridge, not the JSON encoder of the stand-in server sharing its cores.
    public struct PreparedMessages: Sendable {
        /// Each message's JSON up to its closing brace, where `simSequence` goes.
        fileprivate let heads: [String]
        public var count: Int { heads.count }
    }

    /// Serializes `messages` (JSON objects; anything else is left out) for a later `emit(_:)`.
    public func prepare(_ messages: [JSONValue]) -> PreparedMessages {
        PreparedMessages(
            heads: messages.compactMap { message in
                guard case .object = message else { return nil }
                var text = message.serialized()
                text.removeLast()  // "}"
                return text
            })
    }

    /// Queues prepared messages to every live session, in order, each with
    /// its `simSequence`; a stream takes them in runs of up to 512.
    public func emit(_ prepared: PreparedMessages) {
        for session in allLiveSessions() {
            let first = global.withLock { g -> UInt64 in
                defer { g.sequence += UInt64(prepared.count) }
                return g.sequence + 1
            }
            var start = 0
            while start < prepared.count {
                let end = min(prepared.count, start + 512)
                session.queue.push(
                    contentsOf: (start..<end).map { i in
                        let seq = first + UInt64(i)
                        let head = prepared.heads[i]  // "{" alone for an empty object
                        return MessageQueue.Item(sequence: seq, text: head + (head.utf8.count > 1 ? "," : "") + "\"simSequence\":" + String(seq) + "}")
                    })
                start = end
            }
        }
    }

    /// One random traffic event: a call starts or stops alerting, or a user
    /// changes; now and then an inbound call for "agent" starts or ends as well.
    public func randomTraffic() {
        callTraffic()
        let roll = global.withLock { Double($0.rng.next() % 1000) / 1000 }
        let alertingCount = global.withLock { $0.alerting.count }
        if alertingCount < 5 && (roll < 0.35 || (roll < 0.6 && alertingCount == 0)) {
            let names = ["ACME Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"]
            let pick = global.withLock { Int($0.rng.next() % UInt64(names.count)) }
            startAlerting(name: names[pick], address: "+1317555\(String(format: "%04d", pick * 1111 % 10000))")
        } else if roll < 0.6 {
            stopAlerting()
        } else {
            let statuses = ["Available", "Away", "Lunch", "Do Not Disturb", "In a Meeting", "Gone Home"]
            let (uid, status) = global.withLock { g -> (String, String) in
                let u = g.directory[Int(g.rng.next() % UInt64(g.directory.count))].id
                return (u, statuses[Int(g.rng.next() % UInt64(statuses.count))])
            }
            changeUser(uid, property: "statusText", value: .string(status))
        }
    }

    // MARK: Queueing

    func allLiveSessions() -> [SimSession] {
        global.withLock { g in g.sessions.values.filter { $0.mutable.withLock { $0.alive } }.sorted { $0.id < $1.id } }
    }

    @discardableResult
    func enqueue(_ message: JSONValue, to session: SimSession) -> UInt64? {
        guard case .object(var members) = message else { return nil }
        let seq = global.withLock { g -> UInt64 in
            g.sequence += 1
            return g.sequence
        }
        members.append(("simSequence", .int(Int64(seq))))
        session.queue.push(.init(sequence: seq, text: JSONValue.object(members).serialized()))
        return seq
    }

    func enqueueRaw(_ text: String, type: String, to session: SimSession) {
        let seq = global.withLock { g -> UInt64 in
            g.sequence += 1
            return g.sequence
        }
        session.queue.push(.init(sequence: seq, text: text))
    }

    func recordDelivered(_ items: [MessageQueue.Item], session: SimSession) {
        global.withLock { g in
            guard g.recordDeliveries else { return }
            for item in items {
                g.deliveries.append(SimDelivery(sequence: item.sequence, sessionId: session.id, type: Self.typeOf(item.text)))
            }
            // A long run keeps the newest million.
            if g.deliveries.count > 2_000_000 { g.deliveries.removeFirst(1_000_000) }
        }
    }

    static func typeOf(_ text: String) -> String {
        guard let r = text.range(of: #""__type":""#) else { return "malformed" }
        let rest = text[r.upperBound...]
        return String(rest.prefix(while: { $0 != "\"" }))
    }
}

public struct SimulatorError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
