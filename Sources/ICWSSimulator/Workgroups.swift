import Foundation
import HTTPTypes
import Hummingbird
import ICWSProtocol

/// A workgroup of the simulated server (P3.A and P3.E).
public struct SimWorkgroup: Sendable {
    public var id: String
    public var displayName: String?
    public var members: [String]
    public var wrapUpActive: Bool
    /// Wrap-up code ids, in the server's order.
    public var codes: [String]
    /// Seconds of after-call work (0: none).
    public var wrapUpTimeout: Int
    /// The status an ACD call's end moves a member to (an ACW status), if any.
    public var wrapUpStatus: String?

    public init(
        id: String, displayName: String? = nil, members: [String] = ["agent"], wrapUpActive: Bool = false, codes: [String] = [],
        wrapUpTimeout: Int = 0, wrapUpStatus: String? = nil
    ) {
        self.id = id
        self.displayName = displayName
        self.members = members
        self.wrapUpActive = wrapUpActive
        self.codes = codes
        self.wrapUpTimeout = wrapUpTimeout
        self.wrapUpStatus = wrapUpStatus
    }

    /// Two workgroups of user "agent": Sales asks for wrap-up codes and has 3 s
    /// of after-call work; Support asks for none.
    public static let standard = [
        SimWorkgroup(
            id: "Sales", displayName: "Sales Team", wrapUpActive: true, codes: ["Sale", "NoSale", "Callback"], wrapUpTimeout: 3, wrapUpStatus: "Follow Up"),
        SimWorkgroup(id: "Support"),
    ]

    /// The wrap-up codes' labels (a code without one has none on the server).
    public static let standardLabels = ["Sale": "Sale made", "NoSale": "No sale"]
}

/// How icws-sim answers the points of P3.E that are not confirmed.
public struct StatisticsOptions: Sendable, Equatable {
    /// The first statisticValueMessage after a PUT says isDelta true (as the real sample).
    public var firstIsDelta = true
    /// PUT activations answers 403 (no activateSelf right).
    public var activationForbidden = false

    public init() {}
}

/// The queue figures of one workgroup (they move with its calls).
struct SimQueueFigures: Sendable {
    var waiting = 0
    var longestWaitStart: Date?
    var available = 3
    var loggedIn = 5
    var answered = 0
    var abandoned = 0
    /// The waiting calls, oldest first.
    var waitingCalls: [String] = []
}

struct WorkgroupSimState: Sendable {
    var options = StatisticsOptions()
    /// User (lower-cased) → workgroup → activated.
    var activations: [String: [String: Bool]] = [:]
    var figures: [String: SimQueueFigures] = [:]
}

extension ICWSSimulator {
    static let catalogStatistics: [String: [String]] = {
        let w = WorkgroupStatistic.workgroupParameter
        let i = WorkgroupStatistic.intervalParameter
        var c: [String: [String]] = [:]
        for id in ["InteractionsWaiting", "LongestWaitTime", "NumberAvailableForACDInteractions", "AgentsLoggedIn", "PercentAvailable", "TotalAgents", "NotAvailable", "LongestAvailable", "InteractionsOnHold"] {
            c["inin.workgroup:" + id] = [w]
        }
        for id in ["InteractionsEntered", "InteractionsAnswered", "InteractionsAbandoned", "InteractionsCompleted", "AverageWaitTime"] {
            c["inin.workgroup:" + id] = [w, i]
        }
        return c
    }()

    // MARK: Controls

    public func setStatisticsOptions(_ change: (inout StatisticsOptions) -> Void) { calls.withLock { change(&$0.groups.options) } }

    func workgroup(_ id: String) -> SimWorkgroup? { configuration.workgroups.first { $0.id.lowercased() == id.lowercased() } }

    func memberships(_ user: String) -> [SimWorkgroup] { configuration.workgroups.filter { $0.members.contains { Self.sameUser($0, user) } } }

    func activations(_ user: String, in c: CallState) -> [(String, Bool)] {
        memberships(user).map { ($0.id, c.groups.activations[user.lowercased()]?[$0.id] ?? true) }
    }

    /// An ACD call for `workgroup` starts alerting on user "agent"'s queue; the
    /// workgroup's callers waiting go up (and down when the agent answers).
    @discardableResult
    public func queueCall(workgroup: String, user: String = "agent", name: String = "Queue Caller", address: String = "+13175550123") -> String {
        calls.withLock { c in
            var attributes = Self.callAttributes(state: "A", direction: "I", name: name, address: address)
            attributes.append((name: "Eic_WorkgroupName", value: workgroup))
            let id = insertInteraction(user: user, attributes: attributes, in: &c)
            var f = c.groups.figures[workgroup] ?? SimQueueFigures()
            f.waiting += 1
            f.waitingCalls.append(id)
            if f.longestWaitStart == nil { f.longestWaitStart = Date() }
            c.groups.figures[workgroup] = f
            sendFigures(workgroup, [.interactionsWaiting, .longestWaitSince], in: c)
            return id
        }
    }

    /// Flips (or sets) a user's activation in a workgroup, as an administrator would.
    public func setActivation(_ workgroup: String, _ on: Bool, user: String = "agent") {
        calls.withLock { c in
            c.groups.activations[user.lowercased(), default: [:]][workgroup] = on
            sendActivations(user: user, [(workgroup, on)], isDelta: true)
        }
    }

    /// Sends one statistic value as the server would (nil: a `null` value;
    /// any JSON: sent as is, for wrong types and error values) to every
    /// session subscribed to that key.
    public func sendStatistic(_ key: StatisticKey, _ value: JSONValue?) {
        calls.withLock { _ in sendStatisticValues([(key, value ?? .null)]) }
    }

    /// `count` statistics messages, each changing every figure of `perMessage` workgroups (the benchmark's load).
    public func statisticsBurst(messages count: Int, workgroups perMessage: Int) {
        calls.withLock { c in
            let groups = configuration.workgroups
            guard !groups.isEmpty else { return }
            for n in 0..<count {
                var changes: [(StatisticKey, JSONValue)] = []
                for k in 0..<min(perMessage, groups.count) {
                    let wg = groups[(n * perMessage + k) % groups.count].id
                    let v = Int64(c.rng.next() % 50)
                    for s in WorkgroupStatistic.allCases {
                        changes.append((s.key(workgroup: wg), Self.statisticJSON(s, figures: SimQueueFigures(waiting: Int(v), longestWaitStart: v > 0 ? Date() : nil, available: Int(v % 7), loggedIn: 7, answered: Int(v), abandoned: Int(v % 3)))))
                    }
                }
                sendStatisticValues(changes)
            }
        }
    }

    // MARK: Figures → messages (under the `calls` lock)

    static func statisticJSON(_ s: WorkgroupStatistic, figures f: SimQueueFigures) -> JSONValue {
        func int(_ v: Int) -> JSONValue {
            .object([("__type", .string("urn:inin.com:statistics:statisticIntValue")), ("statisticValueType", .int(0)), ("value", .int(Int64(v)))])
        }
        switch s {
        case .interactionsWaiting: return int(f.waiting)
        case .longestWaitSince:
            guard let start = f.longestWaitStart else { return .null }
            return .object([
                ("__type", .string("urn:inin.com:statistics:statisticTimeDurationValue")), ("statisticValueType", .int(5)), ("value", .string(compactUTC(start))),
            ])
        case .agentsAvailable: return int(f.available)
        case .agentsLoggedIn: return int(f.loggedIn)
        case .percentAvailable:
            return .object([
                ("__type", .string("urn:inin.com:statistics:statisticPercentValue")), ("statisticValueType", .int(9)),
                ("value", .double(f.loggedIn == 0 ? 0 : Double(f.available) * 100 / Double(f.loggedIn))),
            ])
        case .answeredThisShift: return int(f.answered)
        case .abandonedThisShift: return int(f.abandoned)
        }
    }

    func sendFigures(_ workgroup: String, _ which: [WorkgroupStatistic], in c: CallState) {
        let f = c.groups.figures[workgroup] ?? SimQueueFigures()
        sendStatisticValues(which.map { ($0.key(workgroup: workgroup), Self.statisticJSON($0, figures: f)) })
    }

    /// One statisticValueMessage per session, with the changes of the keys it subscribed to.
    func sendStatisticValues(_ changes: [(StatisticKey, JSONValue)], isDelta: Bool = true, only: SimSession? = nil) {
        for s in only.map({ [$0] }) ?? allLiveSessions() {
            guard let keys = s.mutable.withLock({ $0.statisticKeys }) else { continue }
            let wanted = Set(keys)
            let items = changes.filter { wanted.contains($0.0) }.map { key, value -> JSONValue in
                .object([("statisticKey", key.json), ("statisticValue", value)])
            }
            guard !items.isEmpty else { continue }
            enqueue(
                .object([("__type", .string(ICWSMessage.TypeURN.statisticValues)), ("isDelta", .bool(isDelta)), ("statisticValueChanges", .array(items))]),
                to: s)
        }
    }

    func sendActivations(user: String, _ changes: [(String, Bool)], isDelta: Bool, only: SimSession? = nil) {
        for s in only.map({ [$0] }) ?? allLiveSessions() {
            guard let sub = s.mutable.withLock({ $0.activationSubscription }), Self.sameUser(sub.userId, user) else { continue }
            enqueue(
                .object([
                    ("__type", .string(ICWSMessage.TypeURN.userActivation)), ("isDelta", .bool(isDelta)), ("subscriptionId", .string(sub.id)),
                    ("userId", .string(user)), ("activationsChanged", .object(changes.map { ($0.0, .bool($0.1)) })),
                ]), to: s)
        }
    }

    /// An ACD call's state moved (under the `calls` lock): answered calls leave
    /// the waiting count; a call abandoned while waiting counts as abandoned;
    /// an answered call that ends starts the member's after-call work.
    func acdCallStateChanged(_ call: SimInteraction, from old: String, in c: inout CallState) {
        guard let wg = call["Eic_WorkgroupName"], !wg.isEmpty, let group = workgroup(wg) else { return }
        var f = c.groups.figures[group.id] ?? c.groups.figures[wg] ?? SimQueueFigures()
        let key = c.groups.figures[group.id] != nil ? group.id : wg
        if f.waitingCalls.contains(call.id), !["A", "O"].contains(call.state) {
            f.waitingCalls.removeAll { $0 == call.id }
            f.waiting = max(0, f.waiting - 1)
            if f.waitingCalls.isEmpty { f.longestWaitStart = nil }
            if call.state == "C" { f.answered += 1 } else { f.abandoned += 1 }
            c.groups.figures[key] = f
            sendFigures(key, [.interactionsWaiting, .longestWaitSince, .answeredThisShift, .abandonedThisShift], in: c)
        }
        // After-call work: an answered ACD call ends.
        if ["C", "H"].contains(old), call.isDisconnected, let acw = group.wrapUpStatus {
            let user = call.user
            let timeout = group.wrapUpTimeout
            Task { [weak self] in
                self?.setUserStatus(acw, user: user)
                guard timeout > 0 else { return }
                try? await Task.sleep(for: .seconds(timeout))
                guard let self else { return }
                let still = self.status.withLock { st in self.statusOf(user, in: st).map { Self.sameStatusId($0.statusId, acw) } ?? false }
                if still { self.setUserStatus("Available", user: user) }
            }
        }
    }

    // MARK: Routes

    func workgroupRoute(_ method: HTTPRequest.Method, session: SimSession, rest: String, body: JSONValue?) -> Response? {
        let parts = rest.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        let lower = parts.map { $0.lowercased() }
        switch (method, lower.count) {
        case (.get, 3) where lower[0] == "configuration" && lower[1] == "users":
            guard configuration.accounts.keys.contains(where: { Self.sameUser($0, parts[2]) }) else {
                return icwsError(.notFound, "error.request.notFound", "The user \(parts[2]) does not exist.")
            }
            let groups = memberships(parts[2]).map { g -> JSONValue in
                .object([("id", .string(g.id)), ("displayName", g.displayName.map { .string($0) } ?? .null), ("uri", .string("/configuration/workgroups/\(g.id)"))])
            }
            return json(.ok, .object([("configurationId", .object([("id", .string(parts[2]))])), ("workgroups", .array(groups))]))
        case (.get, 3) where lower[0] == "configuration" && lower[1] == "workgroups":
            guard let g = workgroup(parts[2]) else { return icwsError(.notFound, "error.request.notFound", "The workgroup \(parts[2]) does not exist.") }
            return json(.ok, .object([
                ("configurationId", .object([("id", .string(g.id)), ("displayName", g.displayName.map { .string($0) } ?? .null)])),
                ("isWrapUpActive", .bool(g.wrapUpActive)),
                ("wrapUpCodes", .array(g.codes.map { .object([("id", .string($0)), ("uri", .string("/configuration/wrap-up-codes/\($0)"))]) })),
                ("wrapUpTimeout", .int(Int64(g.wrapUpTimeout))),
            ]))
        case (.get, 2) where lower[0] == "configuration" && lower[1] == "wrap-up-codes":
            var ids: [String] = []
            var seen: Set<String> = []
            for g in configuration.workgroups { for code in g.codes where seen.insert(code).inserted { ids.append(code) } }
            let items = ids.map { id -> JSONValue in
                var m: [(String, JSONValue)] = [("configurationId", .object([("id", .string(id)), ("displayName", .string(id))]))]
                if let label = configuration.wrapUpLabels[id] { m.append(("label", .object([("defaultValue", .string(label))]))) }
                return .object(m)
            }
            return json(.ok, .object([("items", .array(items))]))
        case (.get, 3) where lower[0] == "activations" && lower[1] == "users":
            let list = calls.withLock { activations(parts[2], in: $0) }
            return json(.ok, .object([("userId", .string(parts[2])), ("activations", .object(list.map { ($0.0, .bool($0.1)) }))]))
        case (.put, 3) where lower[0] == "activations" && lower[1] == "users":
            return putActivations(session, user: parts[2], body: body)
        case (.put, 5) where lower[0] == "messaging" && lower[2] == "activations" && lower[3] == "users":
            guard let user = body?["userId"]?.stringValue, !user.isEmpty else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property userId is missing.", property: "userId")
            }
            guard body?["workgroupIds"]?.arrayValue != nil else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property workgroupIds is missing.", property: "workgroupIds")
            }
            calls.withLock { c in
                session.mutable.withLock { $0.activationSubscription = (id: parts[4], userId: user) }
                sendActivations(user: user, activations(user, in: c), isDelta: false, only: session)
            }
            return Response(status: .ok)
        case (.delete, 5) where lower[0] == "messaging" && lower[2] == "activations" && lower[3] == "users":
            let had = session.mutable.withLock { m -> Bool in
                defer { m.activationSubscription = nil }
                return m.activationSubscription != nil
            }
            return had ? Response(status: .ok) : icwsError(.notFound, "error.request.notFound", "No subscription.")
        case (.put, 4) where lower[0] == "messaging" && lower[2] == "statistics" && lower[3] == "statistic-values":
            return putStatisticValues(session, body: body)
        case (.delete, 4) where lower[0] == "messaging" && lower[2] == "statistics" && lower[3] == "statistic-values":
            session.mutable.withLock { $0.statisticKeys = nil }
            return Response(status: .ok)
        default:
            return nil
        }
    }

    func putActivations(_ session: SimSession, user: String, body: JSONValue?) -> Response {
        guard let changes = body?["activations"]?.objectValue, changes.allSatisfy({ $0.1.boolValue != nil }) else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property activations is missing.", property: "activations")
        }
        let forbidden = calls.withLock { $0.groups.options.activationForbidden }
        guard !forbidden, Self.sameUser(user, session.userId) else {
            return icwsError(.forbidden, "error.request.accessDenied", "The user may not change this activation.")
        }
        for (wg, _) in changes where !memberships(user).contains(where: { $0.id == wg }) {
            return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "The user is not a member of \(wg).", property: "activations")
        }
        let list = calls.withLock { c -> [(String, Bool)] in
            for (wg, on) in changes { c.groups.activations[user.lowercased(), default: [:]][wg] = on.boolValue ?? true }
            sendActivations(user: user, changes.map { ($0.0, $0.1.boolValue ?? true) }, isDelta: true)
            return activations(user, in: c)
        }
        return json(.ok, .object([("userId", .string(user)), ("activations", .object(list.map { ($0.0, .bool($0.1)) }))]))
    }

    /// `PUT …/statistics/statistic-values`: replaces the session's keys and
    /// sends every one's value (unknown identifiers: error 2; parameters not
    /// as the catalog orders them: error 1).
    func putStatisticValues(_ session: SimSession, body: JSONValue?) -> Response {
        guard let list = body?["statisticKeys"]?.arrayValue else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property statisticKeys is missing.", property: "statisticKeys")
        }
        var keys: [StatisticKey] = []
        for item in list {
            guard let id = item["statisticIdentifier"]?.stringValue, let ps = item["parameterValueItems"]?.arrayValue else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Each statistic key needs statisticIdentifier and parameterValueItems.", property: "statisticKeys")
            }
            keys.append(StatisticKey(id, ps.map { StatisticParameter($0["parameterTypeId"]?.stringValue ?? "", $0["value"]?.stringValue ?? "") }))
        }
        calls.withLock { c in
            session.mutable.withLock { $0.statisticKeys = keys }
            let changes = keys.map { key -> (StatisticKey, JSONValue) in
                guard let required = Self.catalogStatistics[key.identifier] else { return (key, Self.errorValue(2)) }
                guard key.parameters.map(\.typeId) == required else { return (key, Self.errorValue(1)) }
                let wg = key.parameter(WorkgroupStatistic.workgroupParameter) ?? ""
                guard let s = WorkgroupStatistic(key: key) else { return (key, .null) }
                return (key, Self.statisticJSON(s, figures: c.groups.figures[wg] ?? SimQueueFigures()))
            }
            sendStatisticValues(changes, isDelta: c.groups.options.firstIsDelta, only: session)
        }
        return Response(status: .ok)
    }

    static func errorValue(_ code: Int64) -> JSONValue {
        .object([("__type", .string("urn:inin.com:statistics:statisticErrorValue")), ("statisticValueType", .int(12)), ("value", .int(code))])
    }
}
