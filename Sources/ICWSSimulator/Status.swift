import Foundation
import HTTPTypes
import Hummingbird
import ICWSProtocol
import Synchronization

/// One entry of the status catalogue (`urn:inin.com:status:statusMessage`).
struct SimStatusMessage: Sendable {
    var statusId: String
    var messageText: String
    var groupTag: String
    var iconUri: String?
    var isSelectableStatus = true
    var isAcdStatus = false
    var isDoNotDisturbStatus = false
    var isAfterCallWorkStatus = false
    var isForwardStatus = false
    var isPersistentStatus = false
    var canHaveDate = false
    var canHaveTime = false

    /// The wire form; `iconUri` is left out when there is none.
    var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("statusId", .string(statusId)), ("messageText", .string(messageText)),
            ("groupTag", .string(groupTag)), ("canHaveDate", .bool(canHaveDate)), ("canHaveTime", .bool(canHaveTime)),
            ("isDoNotDisturbStatus", .bool(isDoNotDisturbStatus)), ("isSelectableStatus", .bool(isSelectableStatus)),
            ("isPersistentStatus", .bool(isPersistentStatus)), ("isForwardStatus", .bool(isForwardStatus)),
            ("isAfterCallWorkStatus", .bool(isAfterCallWorkStatus)), ("isAcdStatus", .bool(isAcdStatus)),
            ("isAllowFollowUpStatus", .bool(false)), ("systemId", .string(statusId)),
        ]
        if let iconUri { m.insert(("iconUri", .string(iconUri)), at: 2) }
        return .object(m)
    }
}

/// A user's current status (`urn:inin.com:status:userStatus`).
struct SimUserStatus: Sendable {
    var userId: String
    var statusId: String
    var notes = ""
    var forwardNumber = ""
    var statusChanged: String
    var loggedIn = true
    var onPhone = false
    var onPhoneChanged: String

    var json: JSONValue {
        [
            "userId": .string(userId), "statusId": .string(statusId), "notes": .string(notes), "forwardNumber": .string(forwardNumber),
            "statusChanged": .string(statusChanged), "loggedIn": .bool(loggedIn), "onPhone": .bool(onPhone),
            "onPhoneChanged": .string(onPhoneChanged),
        ]
    }
}

/// What the next status PUT does instead of the usual 202 and completion.
enum StatusPutFault: Sendable, Equatable {
    case completionError
    case completionErrorValue(JSONValue)
    case noCompletion
    case immediate
}

/// The status catalogue, the access lists and the users' statuses; they outlive sessions.
struct StatusState: Sendable {
    static let defaultCatalogue: [SimStatusMessage] = [
        SimStatusMessage(statusId: "Available", messageText: "Available", groupTag: "Available", iconUri: "/icws/status-icons/Available.png", isAcdStatus: true),
        SimStatusMessage(statusId: "Available, No ACD", messageText: "Available, No ACD", groupTag: "Available", iconUri: "/icws/status-icons/AvailableNoACD.png"),
        SimStatusMessage(statusId: "At Lunch", messageText: "At Lunch", groupTag: "Break", iconUri: "/icws/status-icons/Lunch.png", canHaveTime: true),
        SimStatusMessage(
            statusId: "Do Not Disturb", messageText: "Do Not Disturb", groupTag: "Do Not Disturb", iconUri: "/icws/status-icons/DoNotDisturb.png",
            isDoNotDisturbStatus: true),
        SimStatusMessage(statusId: "Follow Up", messageText: "Follow Up", groupTag: "Follow Up", iconUri: nil, isAfterCallWorkStatus: true),
        SimStatusMessage(
            statusId: "ACD - Agent Not Answering", messageText: "ACD - Agent Not Answering", groupTag: "Unavailable",
            iconUri: "/icws/status-icons/AgentNotAnswering.png", isSelectableStatus: false, isAcdStatus: true),
        SimStatusMessage(
            statusId: "Gone Home", messageText: "Gone Home", groupTag: "Unavailable", iconUri: "/icws/status-icons/GoneHome.png",
            isPersistentStatus: true, canHaveDate: true, canHaveTime: true),
    ]
    /// Left out of the default access list.
    static let notAccessible = "Gone Home"

    var catalogue = StatusState.defaultCatalogue
    /// Lower-cased user id → the status ids the user may select (absent: the default list).
    var access: [String: [String]] = [:]
    /// Lower-cased user id → status; the accounts from the start, others once set.
    var users: [String: SimUserStatus] = [:]
    /// The `statusChanged` of a status nobody set.
    var started: String
    var nextPutFault: StatusPutFault?
    /// Generator of request ids, apart from the traffic's.
    var rng: SplitMix64

    init(accounts: [String], changed: String, rng: SplitMix64) {
        started = changed
        self.rng = rng
        for a in accounts {
            users[a.lowercased()] = SimUserStatus(userId: a, statusId: "Available", statusChanged: changed, onPhoneChanged: changed)
        }
    }

    func accessList(_ user: String) -> [String] {
        access[user.lowercased()] ?? catalogue.map(\.statusId).filter { $0 != Self.notAccessible }
    }

    func catalogueEntry(_ statusId: String) -> SimStatusMessage? {
        catalogue.first { ICWSSimulator.sameStatusId($0.statusId, statusId) }
    }

    /// `9a1c4e0b-…`, UUID-shaped.
    mutating func newRequestId() -> String {
        let a = rng.next()
        let b = rng.next()
        return String(format: "%08llx-%04llx-%04llx-%04llx-%012llx", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & 0xffff_ffff_ffff)
    }
}

extension ICWSSimulator {
    enum StatusURN {
        static let userStatus = "urn:inin.com:status:userStatusMessage"
        static let statusMessages = "urn:inin.com:status:statusMessagesMessage"
        static let statusMessagesUserAccess = "urn:inin.com:status:statusMessagesUserAccessMessage"
    }

    /// Between a status PUT's 202 and its change and completion message.
    static let statusApplyDelay: Duration = .milliseconds(100)

    /// Status ids compare without case.
    static func sameStatusId(_ a: String, _ b: String) -> Bool { a.lowercased() == b.lowercased() }

    // MARK: Inspection and control for tests

    /// The status ids of the catalogue, in its order.
    public var statusCatalogue: [String] { status.withLock { $0.catalogue.map(\.statusId) } }

    /// The user's current statusId, or nil for a user the simulator does not know.
    public func userStatus(user: String = "agent") -> String? {
        status.withLock { st in statusOf(user, in: st)?.statusId }
    }

    /// A change the server makes by itself (an admin, the ACD): applied at once
    /// and sent to every user-statuses subscription that covers the user. A
    /// statusId not in the catalogue is used as given.
    public func setUserStatus(_ statusId: String, user: String = "agent", notes: String = "") {
        status.withLock { st in
            let id = st.catalogueEntry(statusId)?.statusId ?? statusId
            applyStatus(user: user, statusId: id, notes: notes, forwardNumber: "", in: &st)
        }
    }

    /// Replaces the statuses the user may select and sends the difference to
    /// every status-messages-user-access subscription that covers the user.
    public func setStatusAccess(_ statusIds: [String], user: String = "agent") {
        status.withLock { st in
            let old = st.accessList(user)
            let new = statusIds.map { st.catalogueEntry($0)?.statusId ?? $0 }
            st.access[user.lowercased()] = new
            let added = new.filter { n in !old.contains { Self.sameStatusId($0, n) } }
            let removed = old.filter { o in !new.contains { Self.sameStatusId($0, o) } }
            guard !added.isEmpty || !removed.isEmpty else { return }
            var change: [(String, JSONValue)] = [("userId", .string(statusOf(user, in: st)?.userId ?? user))]
            if !added.isEmpty { change.append(("statusMessagesAdded", .array(added.map { .string($0) }))) }
            if !removed.isEmpty { change.append(("statusMessagesRemoved", .array(removed.map { .string($0) }))) }
            for s in allLiveSessions() where s.mutable.withLock({ $0.statusAccessUserIds?.contains(where: { Self.sameUser($0, user) }) ?? false }) {
                enqueue(
                    ["__type": .string(StatusURN.statusMessagesUserAccess), "isDelta": true, "statusMessagesUserAccessChanges": [.object(change)]],
                    to: s)
            }
        }
    }

    // MARK: Status state (these run under the `status` lock, which keeps the deltas in order)

    /// The stored status, or for a directory user nobody set a default one (logged out).
    func statusOf(_ user: String, in st: StatusState) -> SimUserStatus? {
        if let s = st.users[user.lowercased()] { return s }
        let listed = global.withLock { g in g.directory.first(where: { Self.sameUser($0.id, user) })?.id }
        return listed.map { SimUserStatus(userId: $0, statusId: "Available", statusChanged: st.started, loggedIn: false, onPhoneChanged: st.started) }
    }

    /// Sets the status and sends an isDelta:true userStatusMessage to every live
    /// session whose user-statuses subscription covers the user.
    func applyStatus(user: String, statusId: String, notes: String, forwardNumber: String, in st: inout StatusState) {
        let now = Self.compactUTC()
        var s = statusOf(user, in: st) ?? SimUserStatus(userId: user, statusId: statusId, statusChanged: now, onPhoneChanged: now)
        if !Self.sameStatusId(s.statusId, statusId) { s.statusChanged = now }
        s.statusId = statusId
        s.notes = notes
        s.forwardNumber = forwardNumber
        st.users[user.lowercased()] = s
        for session in allLiveSessions() where session.mutable.withLock({ $0.userStatusUserIds?.contains(where: { Self.sameUser($0, user) }) ?? false }) {
            enqueue(["__type": .string(StatusURN.userStatus), "isDelta": true, "userStatusList": [s.json]], to: session)
        }
    }

    // MARK: Routes

    /// `status/...` and `messaging/subscriptions/status/...`; nil for other paths.
    func statusRoute(_ method: HTTPRequest.Method, session: SimSession, rest: String, body: JSONValue?) -> Response? {
        let segments = rest.split(separator: "/").map(String.init)
        let lower = segments.map { $0.lowercased() }
        let methodNotAllowed = icwsError(.methodNotAllowed, "error.request.accessDenied.httpMethodNotAllowed", "Method not allowed.")
        if lower.count == 3, lower[0] == "status", lower[1] == "user-statuses" {
            guard let user = segments[2].removingPercentEncoding, !user.isEmpty else { return noSuchUser(segments[2]) }
            switch method {
            case .get:
                guard let s = status.withLock({ statusOf(user, in: $0) }) else { return noSuchUser(user) }
                return json(.ok, s.json)
            case .put: return putUserStatus(session, user: user, body: body)
            default: return methodNotAllowed
            }
        }
        if lower == ["status", "status-messages"] {
            guard method == .get else { return methodNotAllowed }
            let list = status.withLock { $0.catalogue.map(\.json) }
            return json(.ok, ["statusMessageList": .array(list)])
        }
        if lower.count == 3, lower[0] == "status", lower[1] == "status-messages-user-access" {
            guard method == .get else { return methodNotAllowed }
            guard let user = segments[2].removingPercentEncoding,
                let found = status.withLock({ st in statusOf(user, in: st).map { (userId: $0.userId, ids: st.accessList(user)) } })
            else { return noSuchUser(segments[2]) }
            return json(.ok, ["userId": .string(found.userId), "statusMessages": .array(found.ids.map { .string($0) })])
        }
        guard lower.count >= 4, lower[0] == "messaging", lower[1] == "subscriptions", lower[2] == "status" else { return nil }
        switch (lower[3], lower.count) {
        case ("user-statuses", 4):
            switch method {
            case .put: return putUserStatusSubscription(session, body: body)
            case .delete:
                let had = session.mutable.withLock { m -> Bool in
                    defer { m.userStatusUserIds = nil }
                    return m.userStatusUserIds != nil
                }
                return had ? Response(status: .noContent) : icwsError(.notFound, "error.request.notFound", "No subscription.")
            default: return methodNotAllowed
            }
        case ("status-messages", 4):
            switch method {
            case .put:
                status.withLock { st in
                    session.mutable.withLock { $0.statusMessagesSubscribed = true }
                    enqueue(
                        ["__type": .string(StatusURN.statusMessages), "isDelta": false, "statusMessagesAdded": .array(st.catalogue.map(\.json))],
                        to: session)
                }
                return Response(status: .ok)
            case .delete:
                let had = session.mutable.withLock { m -> Bool in
                    defer { m.statusMessagesSubscribed = false }
                    return m.statusMessagesSubscribed
                }
                return had ? Response(status: .noContent) : icwsError(.notFound, "error.request.notFound", "No subscription.")
            default: return methodNotAllowed
            }
        case ("status-messages-user-access", 4), ("status-messages-user-access", 5):
            switch method {
            case .put:
                // P2.C has the users in the body; a user id after the path is taken as well.
                let fromPath = lower.count == 5 ? segments[4].removingPercentEncoding.map { [JSONValue.string($0)] } : nil
                return putStatusAccessSubscription(session, userIds: fromPath ?? body?["userIds"]?.arrayValue)
            case .delete:
                let had = session.mutable.withLock { m -> Bool in
                    defer { m.statusAccessUserIds = nil }
                    return m.statusAccessUserIds != nil
                }
                return had ? Response(status: .noContent) : icwsError(.notFound, "error.request.notFound", "No subscription.")
            default: return methodNotAllowed
            }
        default:
            return nil
        }
    }

    func noSuchUser(_ user: String) -> Response {
        icwsError(.notFound, "error.request.notFound", "The user \(user) does not exist.")
    }

    private enum PutOutcome: Sendable {
        case refused
        case immediate
        case accepted(requestId: String, statusId: String, fault: StatusPutFault?)
    }

    /// `PUT status/user-statuses/{userId}` (`userStatusUpdate`): 202 with a requestId,
    /// then the change, its deltas and the asyncOperationCompletedMessage.
    func putUserStatus(_ session: SimSession, user: String, body: JSONValue?) -> Response {
        guard Self.sameUser(user, session.userId) else {
            return icwsError(.forbidden, "error.request.accessDenied.noRights", "This session may not set the status of \(user).")
        }
        guard let body, case .object = body else {
            return icwsError(.badRequest, "error.request.invalidRepresentation", "The request body is not valid JSON.")
        }
        guard let requested = body["statusId"]?.stringValue, !requested.isEmpty else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property statusId is missing.", property: "statusId")
        }
        var options: [String: String] = [:]
        for key in ["notes", "forwardNumber"] {
            guard let value = body[key], !value.isNull else { continue }
            guard let text = value.stringValue else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Property \(key) must be a string.", property: key)
            }
            options[key] = text
        }
        let notes = options["notes"] ?? ""
        let forwardNumber = options["forwardNumber"] ?? ""
        let outcome = status.withLock { st -> PutOutcome in
            guard let entry = st.catalogueEntry(requested), entry.isSelectableStatus,
                st.accessList(session.userId).contains(where: { Self.sameStatusId($0, entry.statusId) })
            else { return .refused }
            let fault = st.nextPutFault
            st.nextPutFault = nil
            if fault == .immediate {
                applyStatus(user: session.userId, statusId: entry.statusId, notes: notes, forwardNumber: forwardNumber, in: &st)
                return .immediate
            }
            return .accepted(requestId: st.newRequestId(), statusId: entry.statusId, fault: fault)
        }
        switch outcome {
        case .refused:
            return icwsError(
                .badRequest, "error.request.invalidRepresentation.invalidProperty",
                "The status \(requested) is unknown or may not be selected by \(session.userId).", property: "statusId")
        case .immediate:
            return Response(status: .ok)
        case .accepted(let requestId, let statusId, let fault):
            if fault != .noCompletion {
                let delay = Self.statusApplyDelay
                Task { [weak self] in
                    try? await Task.sleep(for: delay)
                    self?.completeStatusPut(
                        session, requestId: requestId, statusId: statusId, notes: notes, forwardNumber: forwardNumber, refused: fault)
                }
            }
            return json(.accepted, ["requestId": .string(requestId)])
        }
    }

    /// Applies an accepted status PUT (unless `refused`), then queues its
    /// asyncOperationCompletedMessage after the deltas.
    func completeStatusPut(_ session: SimSession, requestId: String, statusId: String, notes: String, forwardNumber: String, refused fault: StatusPutFault?) {
        status.withLock { st in
            var error: JSONValue = nil
            if fault == .completionError {
                error = ["errorId": "error.status.sim", "message": "status change refused"]
            } else if case .completionErrorValue(let value)? = fault {
                error = value
            } else {
                applyStatus(user: session.userId, statusId: statusId, notes: notes, forwardNumber: forwardNumber, in: &st)
            }
            guard session.mutable.withLock({ $0.alive }) else { return }
            enqueue(
                ["__type": .string(ICWSMessage.TypeURN.asyncOperationCompleted), "isDelta": false, "requestId": .string(requestId), "error": error],
                to: session)
        }
    }

    /// User ids from a `userIds` list: one or more strings, each once (without case).
    func userIdList(_ list: [JSONValue]?) -> [String]? {
        guard let list, !list.isEmpty, list.allSatisfy({ $0.stringValue != nil }) else { return nil }
        var ids: [String] = []
        for id in list.compactMap(\.stringValue) where !ids.contains(where: { Self.sameUser($0, id) }) { ids.append(id) }
        return ids
    }

    /// `PUT messaging/subscriptions/status/user-statuses` `{"userIds": [...]}`: replaces
    /// the watched users and queues an isDelta:false userStatusMessage with all of them.
    func putUserStatusSubscription(_ session: SimSession, body: JSONValue?) -> Response {
        guard let ids = userIdList(body?["userIds"]?.arrayValue) else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property userIds is missing.", property: "userIds")
        }
        return status.withLock { st -> Response in
            let statuses = ids.map { statusOf($0, in: st) }
            if let i = statuses.firstIndex(where: { $0 == nil }) { return noSuchUser(ids[i]) }
            session.mutable.withLock { $0.userStatusUserIds = ids }
            enqueue(["__type": .string(StatusURN.userStatus), "isDelta": false, "userStatusList": .array(statuses.compactMap { $0?.json })], to: session)
            return Response(status: .ok)
        }
    }

    /// `PUT messaging/subscriptions/status/status-messages-user-access`: queues an
    /// isDelta:false statusMessagesUserAccessMessage whose `statusMessagesAdded` is each user's whole list.
    func putStatusAccessSubscription(_ session: SimSession, userIds: [JSONValue]?) -> Response {
        guard let ids = userIdList(userIds) else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property userIds is missing.", property: "userIds")
        }
        return status.withLock { st -> Response in
            var changes: [JSONValue] = []
            for id in ids {
                guard let s = statusOf(id, in: st) else { return noSuchUser(id) }
                changes.append(["userId": .string(s.userId), "statusMessagesAdded": .array(st.accessList(id).map { .string($0) })])
            }
            session.mutable.withLock { $0.statusAccessUserIds = ids }
            enqueue(
                ["__type": .string(StatusURN.statusMessagesUserAccess), "isDelta": false, "statusMessagesUserAccessChanges": .array(changes)],
                to: session)
            return Response(status: .ok)
        }
    }

    // MARK: Faults

    /// `.subscriptionFaulted`: every session with the subscription gets a state 3
    /// (Faulted) message naming it and loses it. Queue subscriptions get the queue variant.
    func faultSubscription(_ suffix: String) {
        var path = suffix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let prefix = "messaging/subscriptions/"
        if path.lowercased().hasPrefix(prefix) { path = String(path.dropFirst(prefix.count)) }
        let segments = path.split(separator: "/").map(String.init)
        let lower = segments.map { $0.lowercased() }
        guard let first = lower.first else { return }
        if first == "queues" {
            faultQueueSubscriptions(only: segments.count > 1 ? segments.dropFirst().joined(separator: "/") : nil, reason: "faulted")
            return
        }
        let name = lower.prefix(first == "status" || first == "connection" ? 2 : 1).joined(separator: "/")
        // Under the status lock, so that no status delta follows the state message.
        status.withLock { _ in
            for s in allLiveSessions() {
                let faulted = s.mutable.withLock { m -> [String] in
                    switch lower {
                    case ["connection", "station"]:
                        guard m.stationSubscribed else { return [] }
                        m.stationSubscribed = false
                        return [name]
                    case ["interaction-alerting"]:
                        guard m.alertingAttributes != nil else { return [] }
                        m.alertingAttributes = nil
                        return [name]
                    case ["configuration", "users"]:
                        defer { m.usersSubscriptions.removeAll() }
                        return m.usersSubscriptions.keys.sorted()
                    case _ where lower.count > 2 && lower[0] == "configuration" && lower[1] == "users":
                        let id = segments.dropFirst(2).joined(separator: "/")
                        guard m.usersSubscriptions.removeValue(forKey: id) != nil else { return [] }
                        return [id]
                    case ["status", "user-statuses"]:
                        guard m.userStatusUserIds != nil else { return [] }
                        m.userStatusUserIds = nil
                        return [name]
                    case ["status", "status-messages"]:
                        guard m.statusMessagesSubscribed else { return [] }
                        m.statusMessagesSubscribed = false
                        return [name]
                    case _ where lower.count >= 2 && lower[0] == "status" && lower[1] == "status-messages-user-access":
                        guard m.statusAccessUserIds != nil else { return [] }
                        m.statusAccessUserIds = nil
                        return [name]
                    case ["statistics", "statistic-values"]:
                        guard m.statisticKeys != nil else { return [] }
                        m.statisticKeys = nil
                        return ["statistics/statistic-values"]
                    case _ where lower.count >= 2 && lower[0] == "activations" && lower[1] == "users":
                        guard let sub = m.activationSubscription else { return [] }
                        m.activationSubscription = nil
                        return [sub.id]
                    default:
                        return []
                    }
                }
                for id in faulted {
                    enqueue(
                        [
                            "__type": .string(ICWSMessage.TypeURN.subscriptionState), "isDelta": true, "subscriptionId": .string(id),
                            "state": 3, "error": ["message": "faulted"],
                        ], to: s)
                }
            }
        }
    }
}
