import Foundation
import HTTPTypes
import Hummingbird
import ICWSProtocol
import Synchronization

/// One interaction on a user's queue.
struct SimInteraction: Sendable {
    var id: String
    var user: String
    /// In the order they were first set; names match case-insensitively.
    var attributes: [(name: String, value: String)]
    /// A conference child names its parent (in the entry that adds it).
    var conferenceParentId: String?

    subscript(name: String) -> String? {
        get {
            let lower = name.lowercased()
            return attributes.first { $0.name.lowercased() == lower }?.value
        }
        set {
            let lower = name.lowercased()
            if let i = attributes.firstIndex(where: { $0.name.lowercased() == lower }) {
                if let newValue { attributes[i].value = newValue } else { attributes.remove(at: i) }
            } else if let newValue {
                attributes.append((name: name, value: newValue))
            }
        }
    }

    var state: String { self["Eic_State"] ?? "" }
    var isDisconnected: Bool { state == "I" || state == "E" }
}

/// The interactions of every user; they outlive sessions.
struct CallState: Sendable {
    var interactions: [SimInteraction] = []
    var nextId: UInt64 = 1_001_000_000
    /// `.queueSnapshotMissing`: the next snapshot leaves out its first interaction.
    var snapshotMissing = false
    /// Generator of the call traffic, apart from the alerting traffic's.
    var rng: SplitMix64
    var tick: UInt64 = 0
    var trafficCall: (id: String, hangupAt: UInt64)?
    /// Consults, conferences and secure pauses (contract v1.2's side of the server).
    var work = CallWorkState()
    /// Activations and queue figures of the workgroups.
    var groups = WorkgroupSimState()
}

/// A change to a user's queue, as a delta carries it.
enum QueueChange {
    case added(SimInteraction)
    case changed(id: String, attributes: [(name: String, value: String)])
    case removed(id: String)
}

private enum ActionOutcome {
    case notFound
    case badState(String)
    case done
}

extension ICWSSimulator {
    /// IceLib `InteractionCapabilities` bits.
    enum Capability {
        static let disconnect: UInt32 = 2
        static let hold: UInt32 = 4
        static let messaging: UInt32 = 16
        static let mute: UInt32 = 32
        static let pickup: UInt32 = 256
        static let transfer: UInt32 = 4096
    }

    static let removalDelay: Duration = .milliseconds(300)
    static let outboundConnectDelay: Duration = .milliseconds(200)
    static let interactionActions: Set<String> = [
        "pickup", "disconnect", "hold", "mute", "send-digits", "blind-transfer", "send-to-voicemail",
    ]

    static func capabilities(forState state: String) -> String {
        let c = Capability.self
        let bits: UInt32
        switch state {
        case "O", "A": bits = c.pickup | c.disconnect | c.transfer | c.messaging
        case "C": bits = c.disconnect | c.hold | c.mute | c.transfer | c.messaging | securePauseCapability
        case "H": bits = c.pickup | c.disconnect | c.hold | c.mute | c.transfer | c.messaging | securePauseCapability
        case "R": bits = c.disconnect | c.mute
        default: bits = 0
        }
        return String(bits)
    }

    static func stateAttributes(_ state: String) -> [(name: String, value: String)] {
        [(name: "Eic_State", value: state), (name: "Eic_Capabilities", value: capabilities(forState: state))]
    }

    static func callAttributes(state: String, direction: String, name: String, address: String) -> [(name: String, value: String)] {
        [
            ("Eic_State", state), ("Eic_ObjectType", "Call"), ("Eic_CallDirection", direction), ("Eic_RemoteName", name),
            ("Eic_RemoteAddress", address), ("Eic_Capabilities", capabilities(forState: state)), ("Eic_Muted", "0"),
            ("Eic_InitiationTime", compactUTC()), ("Eic_ConferenceId", ""),
        ]
    }

    /// `20240301T141502Z`.
    static func compactUTC(_ date: Date = Date()) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(
            format: "%04ld%02ld%02ldT%02ld%02ld%02ldZ", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    /// IC user ids compare without case.
    static func sameUser(_ a: String, _ b: String) -> Bool { a.lowercased() == b.lowercased() }

    // MARK: Inspection and control for tests

    /// Starts an inbound call alerting on `user`'s queue; returns its interaction id.
    @discardableResult
    public func startCall(user: String = "agent", name: String = "ACME Corp", address: String = "+13175550100") -> String {
        calls.withLock { c in
            insertInteraction(user: user, attributes: Self.callAttributes(state: "A", direction: "I", name: name, address: address), in: &c)
        }
    }

    /// The remote party hangs up: state E, then the call leaves the queue.
    public func remoteHangup(_ id: String) {
        calls.withLock { c in
            guard let i = c.interactions.firstIndex(where: { $0.id == id }) else { return }
            hangUp(at: i, state: "E", in: &c)
        }
    }

    /// The current attributes of an interaction, or nil when it is not on any queue.
    public func interaction(_ id: String) -> [String: String]? {
        calls.withLock { c in
            c.interactions.first { $0.id == id }.map { call in
                Dictionary(call.attributes.map { ($0.name, $0.value) }, uniquingKeysWith: { _, new in new })
            }
        }
    }

    /// The interactions on user "agent"'s queue, oldest first.
    public var interactionIds: [String] { interactionIds(user: "agent") }

    /// The interactions on a user's queue, oldest first.
    public func interactionIds(user: String) -> [String] {
        calls.withLock { c in c.interactions.filter { Self.sameUser($0.user, user) }.map(\.id) }
    }

    /// Every `POST /icws/{session}/interactions/{id}/{action}` received (any answer), oldest first.
    public var actionRequests: [(id: String, action: String, body: JSONValue?)] {
        requests.compactMap { r -> (id: String, action: String, body: JSONValue?)? in
            guard r.method == "POST" else { return nil }
            let parts = r.path.split(separator: "/").map(String.init)
            guard parts.count == 5, parts[0].lowercased() == "icws", parts[2].lowercased() == "interactions" else { return nil }
            return (id: parts[3].removingPercentEncoding ?? parts[3], action: parts[4].lowercased(), body: r.body)
        }
    }

    // MARK: Queue state (these run under the `calls` lock, which keeps the deltas in order)

    func insertInteraction(user: String, attributes: [(name: String, value: String)], in c: inout CallState) -> String {
        c.nextId += 1
        let call = SimInteraction(id: String(c.nextId), user: user, attributes: attributes)
        c.interactions.append(call)
        sendQueueChange(.added(call), user: user)
        return call.id
    }

    /// Sets attributes and sends those whose value changed.
    func apply(_ values: [(name: String, value: String)], at i: Int, in c: inout CallState) {
        var changed: [(name: String, value: String)] = []
        let oldState = c.interactions[i].state
        for (name, value) in values where c.interactions[i][name] != value {
            c.interactions[i][name] = value
            changed.append((name: name, value: value))
        }
        if !changed.isEmpty {
            sendQueueChange(.changed(id: c.interactions[i].id, attributes: changed), user: c.interactions[i].user)
        }
        if c.interactions[i].state != oldState { acdCallStateChanged(c.interactions[i], from: oldState, in: &c) }
    }

    /// Disconnects (state I or E) and removes the interaction a moment later.
    func hangUp(at i: Int, state: String, in c: inout CallState) {
        guard !c.interactions[i].isDisconnected else { return }
        apply(Self.stateAttributes(state), at: i, in: &c)
        let id = c.interactions[i].id
        conferencePartyLeft(id, in: &c)
        let delay = Self.removalDelay
        Task { [weak self] in
            try? await Task.sleep(for: delay)
            self?.removeInteraction(id)
        }
    }

    func removeInteraction(_ id: String) {
        calls.withLock { c in
            guard let i = c.interactions.firstIndex(where: { $0.id == id }) else { return }
            let call = c.interactions.remove(at: i)
            sendQueueChange(.removed(id: id), user: call.user)
        }
    }

    /// Queues an isDelta:true queueContentsMessage to every live session of `user`
    /// for each of its queue subscriptions.
    func sendQueueChange(_ change: QueueChange, user: String) {
        for s in allLiveSessions() where Self.sameUser(s.userId, user) {
            let subs = s.mutable.withLock { $0.queueSubscriptions }
            for (subId, names) in subs.sorted(by: { $0.key < $1.key }) {
                var m: [(String, JSONValue)] = [
                    ("__type", .string(ICWSMessage.TypeURN.queueContents)), ("isDelta", true), ("subscriptionId", .string(subId)),
                ]
                switch change {
                case .added(let call):
                    m.append(("interactionsAdded", .array([Self.queueEntry(call.id, call.attributes, names: names, parent: call.conferenceParentId)])))
                case .changed(let id, let attributes):
                    let entry = Self.queueEntry(id, attributes, names: names)
                    // Nothing this subscription asked for changed.
                    guard entry["attributes"]?.objectValue?.isEmpty == false else { continue }
                    m.append(("interactionsChanged", .array([entry])))
                case .removed(let id):
                    m.append(("interactionsRemoved", .array([.string(id)])))
                }
                enqueue(.object(m), to: s)
            }
        }
    }

    /// `{"interactionId": id, "attributes": {...}}` with the subscribed attributes, named as subscribed.
    static func queueEntry(_ id: String, _ attributes: [(name: String, value: String)], names: [String], parent: String? = nil) -> JSONValue {
        var selected: [(String, JSONValue)] = []
        var seen: Set<String> = []
        for name in names where seen.insert(name.lowercased()).inserted {
            let lower = name.lowercased()
            if let a = attributes.first(where: { $0.name.lowercased() == lower }) {
                selected.append((name, .string(a.value)))
            }
        }
        var entry: [(String, JSONValue)] = [("interactionId", .string(id)), ("attributes", .object(selected))]
        if let parent { entry.append(("conferenceParentId", .string(parent))) }
        return .object(entry)
    }

    // MARK: Routes

    func putQueueSubscription(_ session: SimSession, subId: String, body: JSONValue?) -> Response {
        guard !subId.isEmpty else { return icwsError(.notFound, "error.request.notFound", "No subscription id.") }
        guard let queueIds = body?["queueIds"]?.arrayValue, !queueIds.isEmpty else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property queueIds is missing.", property: "queueIds")
        }
        guard let names = body?["attributeNames"]?.arrayValue, !names.isEmpty, names.allSatisfy({ $0.stringValue != nil }) else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property attributeNames is missing.", property: "attributeNames")
        }
        for queue in queueIds {
            guard let type = queue["queueType"]?.intValue, let name = queue["queueName"]?.stringValue else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Each queueId needs a numeric queueType and a queueName.", property: "queueIds")
            }
            guard type == Int64(QueueType.user.rawValue), Self.sameUser(name, session.userId) else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "The queue \(name) (type \(type)) is not this session's user queue.", property: "queueIds")
            }
        }
        let attributeNames = names.compactMap(\.stringValue)
        calls.withLock { c in
            session.mutable.withLock { $0.queueSubscriptions[subId] = attributeNames }
            var current = c.interactions.filter { Self.sameUser($0.user, session.userId) }
            if c.snapshotMissing, !current.isEmpty {
                current.removeFirst()
                c.snapshotMissing = false
            }
            enqueue(
                [
                    "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": false, "subscriptionId": .string(subId),
                    "interactionsAdded": .array(current.map { Self.queueEntry($0.id, $0.attributes, names: attributeNames, parent: $0.conferenceParentId) }),
                ], to: session)
        }
        return Response(status: .ok)
    }

    func deleteQueueSubscription(_ session: SimSession, subId: String) -> Response {
        let had = session.mutable.withLock { $0.queueSubscriptions.removeValue(forKey: subId) != nil }
        return had ? Response(status: .ok) : icwsError(.notFound, "error.request.notFound", "No subscription.")
    }

    func interactionNotFound() -> Response {
        icwsError(.notFound, "error.request.interaction.notFound", "The interaction does not exist")
    }

    /// `POST /icws/{session}/interactions/{id}/{action}`.
    func interactionAction(_ session: SimSession, id: String, action: String, body: JSONValue?) -> Response {
        guard Self.interactionActions.contains(action) else {
            return icwsError(.notFound, "error.request.notFound", "No such resource.")
        }
        let missing = { (property: String) -> Response in
            self.icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property \(property) is missing.", property: property)
        }
        switch action {
        case "hold", "mute":
            guard body?["on"]?.boolValue != nil else { return missing("on") }
        case "send-digits":
            guard let digits = body?["dtmfDigits"]?.stringValue, !digits.isEmpty else { return missing("dtmfDigits") }
        case "blind-transfer":
            let target = body?["target"]?.stringValue ?? ""
            let queueName = body?["queueID"]?["queueName"]?.stringValue ?? ""
            guard !target.isEmpty || !queueName.isEmpty else { return missing("target") }
        default: break
        }
        let on = body?["on"]?.boolValue ?? false
        let outcome = calls.withLock { c -> ActionOutcome in
            guard let i = c.interactions.firstIndex(where: { $0.id == id && Self.sameUser($0.user, session.userId) }) else {
                return .notFound
            }
            let state = c.interactions[i].state
            if c.interactions[i].isDisconnected { return .badState(state) }
            switch action {
            case "pickup":
                guard ["A", "O", "H", "C"].contains(state) else { return .badState(state) }
                apply(Self.stateAttributes("C"), at: i, in: &c)
            case "disconnect":
                hangUp(at: i, state: "I", in: &c)
            case "hold":
                guard ["C", "H"].contains(state) else { return .badState(state) }
                apply(Self.stateAttributes(on ? "H" : "C"), at: i, in: &c)
            case "mute":
                guard ["C", "H", "R"].contains(state) else { return .badState(state) }
                apply([(name: "Eic_Muted", value: on ? "1" : "0")], at: i, in: &c)
            case "send-digits":
                guard ["C", "H", "R"].contains(state) else { return .badState(state) }
            default:  // blind-transfer, send-to-voicemail
                guard ["A", "O", "C", "H"].contains(state) else { return .badState(state) }
                hangUp(at: i, state: "I", in: &c)
            }
            return .done
        }
        switch outcome {
        case .notFound: return interactionNotFound()
        case .badState(let state):
            return icwsError(.badRequest, "error.request.interaction.invalidState", "The interaction's state (\(state)) does not allow \(action).")
        case .done: return Response(status: .ok)
        }
    }

    /// `POST /icws/{session}/interactions` with `createCallParameters`.
    func createCall(_ session: SimSession, body: JSONValue?) -> Response {
        guard let body, case .object = body else {
            return icwsError(.badRequest, "error.request.invalidRepresentation", "The request body is not valid JSON.")
        }
        guard body["__type"]?.stringValue == "urn:inin.com:interactions:createCallParameters" else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Unsupported interaction parameters type.", property: "__type")
        }
        guard let target = body["target"]?.stringValue, !target.trimmingCharacters(in: .whitespaces).isEmpty else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property target is missing.", property: "target")
        }
        var call = SimInteraction(
            id: "", user: session.userId, attributes: Self.callAttributes(state: "R", direction: "O", name: target, address: target))
        if let workgroup = body["workgroup"], !workgroup.isNull {
            guard let w = workgroup.stringValue else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Property workgroup must be a string.", property: "workgroup")
            }
            if !w.isEmpty { call["Eic_WorkgroupName"] = w }
        }
        if let extra = body["additionalAttributes"], !extra.isNull {
            guard let members = extra.objectValue, members.allSatisfy({ $0.1.stringValue != nil }) else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Property additionalAttributes must map names to strings.", property: "additionalAttributes")
            }
            for (name, value) in members { call[name] = value.stringValue }
        }
        if let code = body["accountCodeId"], !code.isNull {
            guard let digits = code.stringValue else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Property accountCodeId must be a string.", property: "accountCodeId")
            }
            call["Eic_AccountCode"] = digits
        }
        let id = calls.withLock { c in insertInteraction(user: session.userId, attributes: call.attributes, in: &c) }
        let delay = Self.outboundConnectDelay
        Task { [weak self] in
            try? await Task.sleep(for: delay)
            self?.outboundAnswered(id)
        }
        return json(.created, ["interactionId": .string(id)])
    }

    /// The far end of an outbound call answers (if it is still proceeding).
    func outboundAnswered(_ id: String) {
        calls.withLock { c in
            guard let i = c.interactions.firstIndex(where: { $0.id == id }), c.interactions[i].state == "R" else { return }
            apply(Self.stateAttributes("C"), at: i, in: &c)
        }
    }

    // MARK: Faults and traffic

    /// `.queueFaulted` (and `.subscriptionFaulted` of `queues[/{id}]`): every queue
    /// subscription (or the one named `only`) gets state 3 (Faulted) and delivers nothing more.
    func faultQueueSubscriptions(only: String? = nil, reason: String = "Queue no longer accessible") {
        calls.withLock { _ in
            for s in allLiveSessions() {
                let subs = s.mutable.withLock { m -> [String] in
                    let ids = m.queueSubscriptions.keys.filter { id in only.map { $0.lowercased() == id.lowercased() } ?? true }.sorted()
                    for id in ids { m.queueSubscriptions.removeValue(forKey: id) }
                    return ids
                }
                for subId in subs {
                    enqueue(
                        [
                            "__type": .string(ICWSMessage.TypeURN.queueSubscriptionState), "isDelta": true, "subscriptionId": .string(subId),
                            "state": 3, "error": ["message": .string(reason)],
                        ], to: s)
                }
            }
        }
    }

    /// `.queueOddValues`: a change of the user's first interaction with values that are not strings.
    func sendOddQueueValues() {
        calls.withLock { c in
            for s in allLiveSessions() {
                guard let call = c.interactions.first(where: { Self.sameUser($0.user, s.userId) }) else { continue }
                let attributes: JSONValue = .object([
                    ("Eic_Capabilities", .int(12_345_678_901_234)), ("Eic_Muted", .bool(true)), ("Eic_State", .string("Z")),
                    ("Eic_RemoteName", .object([("first", .string("Odd")), ("last", .string("Value"))])),
                ])
                let entry: JSONValue = .object([("interactionId", .string(call.id)), ("attributes", attributes)])
                let subs = s.mutable.withLock { $0.queueSubscriptions.keys.sorted() }
                for subId in subs {
                    enqueue(
                        [
                            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": .string(subId),
                            "interactionsChanged": .array([entry]),
                        ], to: s)
                }
            }
        }
    }

    /// One traffic step for user "agent": now and then an inbound call starts,
    /// and its remote party hangs up some steps later.
    func callTraffic() {
        guard configuration.accounts["agent"] != nil else { return }
        calls.withLock { c in
            c.tick += 1
            if let t = c.trafficCall {
                guard c.tick >= t.hangupAt else { return }
                c.trafficCall = nil
                if let i = c.interactions.firstIndex(where: { $0.id == t.id }) { hangUp(at: i, state: "E", in: &c) }
                return
            }
            guard c.rng.next() % 100 < 2 else { return }
            let callers = [("Contoso", "+13175550142"), ("Northwind", "+13175550177"), ("Tailspin", "+13175550188")]
            let caller = callers[Int(c.rng.next() % UInt64(callers.count))]
            let after = 20 + c.rng.next() % 40
            let id = insertInteraction(
                user: "agent", attributes: Self.callAttributes(state: "A", direction: "I", name: caller.0, address: caller.1), in: &c)
            c.trafficCall = (id: id, hangupAt: c.tick + after)
        }
    }
}
