/// ICWS enums travel as integers; these name the values the bridge uses.
/// Decoding accepts the integer or the member name (case-insensitive); an
/// integer outside the known range passes through unchanged.
public enum ICWSEnum {
    package static func decode(_ value: JSONValue, names: [String], field: String) throws(MessageDecodeError) -> UInt32 {
        switch value {
        case .int(let i) where i >= 0 && i <= Int64(UInt32.max): return UInt32(i)
        case .double(let d) where d >= 0 && d <= Double(UInt32.max) && d.rounded() == d: return UInt32(d)
        case .string(let s):
            if let i = names.firstIndex(where: { $0.caseInsensitiveCompare(s) }) { return UInt32(i) }
            if let i = UInt32(s) { return i }
            throw MessageDecodeError(field: field, reason: "unknown value \"\(s.prefix(64))\"")
        default: throw MessageDecodeError(field: field, reason: "expected an enum value")
        }
    }
}

extension String {
    func caseInsensitiveCompare(_ other: String) -> Bool { lowercased() == other.lowercased() }
}

/// A message that could not be understood; the session goes on without it.
public struct MessageDecodeError: Error, Sendable, CustomStringConvertible, Equatable {
    public var messageType: String?
    public var field: String
    public var reason: String

    public init(messageType: String? = nil, field: String, reason: String) {
        self.messageType = messageType
        self.field = field
        self.reason = reason
    }

    public var description: String {
        let where_ = field.isEmpty ? "" : " field \(field)"
        return "malformed ICWS message \(messageType ?? "")\(where_): \(reason)"
    }
}

/// A value that must never be printed: its description is redacted, and
/// every secret made is known to `SecretRegistry`, so that the log filter
/// removes it from any line, whoever writes it.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String, kind: SecretRegistry.Kind = .credential) {
        self.value = value
        SecretRegistry.shared.register(value, kind: kind)
    }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

public struct StationInformation: Sendable, Equatable {
    public var id: String?
    public var `extension`: String?
    public var canBeDialed: Bool?
    public var ringAlways: Bool?
    public var sipAddress: String?
    public var sipUser: String?
    public var sipPassword: Secret?
    public var remoteNumber: String?
    public var managedIPPhone: String?
    public var emergencyResponderLocationID: String?
    public var stationSetting: StationSetting?
    public var allowedMediaTypes: [MediaType]?
    public var named: NamedKeys = []

    public init() {}

    public static func decode(_ json: JSONValue, field: String) throws(MessageDecodeError) -> StationInformation {
        guard case .object = json else { throw MessageDecodeError(field: field, reason: "expected an object") }
        var s = StationInformation()
        var r = FieldReader(json, prefix: field)
        s.id = try r.optionalString("id")
        s.extension = try r.optionalString("extension")
        s.canBeDialed = try r.optionalBool("canBeDialed")
        s.ringAlways = try r.optionalBool("ringAlways")
        s.sipAddress = try r.optionalString("sipAddress")
        s.sipUser = try r.optionalString("sipUser")
        s.sipPassword = try r.optionalString("sipPassword").map { Secret($0, kind: .station) }
        s.remoteNumber = try r.optionalString("remoteNumber")
        s.managedIPPhone = try r.optionalString("managedIPPhone")
        s.emergencyResponderLocationID = try r.optionalString("emergencyResponderLocationID")
        s.stationSetting = try r.optionalEnum("stationSetting")
        s.allowedMediaTypes = try r.optionalEnumArray("allowedMediaTypes")
        s.named = NamedKeys(of: json)
        return s
    }
}

public struct ConnectionStateChangeMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var previousConnectionState: ConnectionState
    public var newConnectionState: ConnectionState
    public var reason: String
    public var shouldReconnect: Bool?

    public init(isDelta: Bool, previousConnectionState: ConnectionState, newConnectionState: ConnectionState, reason: String, shouldReconnect: Bool? = nil) {
        self.isDelta = isDelta
        self.previousConnectionState = previousConnectionState
        self.newConnectionState = newConnectionState
        self.reason = reason
        self.shouldReconnect = shouldReconnect
    }
}

public struct StationConnectionStateChangeMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var previousStationInfo: StationInformation?
    public var newStationInfo: StationInformation

    public init(isDelta: Bool, previousStationInfo: StationInformation? = nil, newStationInfo: StationInformation) {
        self.isDelta = isDelta
        self.previousStationInfo = previousStationInfo
        self.newStationInfo = newStationInfo
    }
}

public struct InteractionAlertDetail: Sendable, Equatable {
    public var interactionId: String
    public var interactionType: String
    public var name: String
    public var address: String
    public var alertType: AlertType
    public var alertAction: AlertAction
    public var autoAnswer: Bool
    public var queueType: QueueType?
    public var queueName: String?
    public var attributes: [(String, String)]
    /// Attributes the message sent as null (cleared).
    public var clearedAttributes: [String] = []
    public var named: NamedKeys = []

    public init(
        interactionId: String, interactionType: String = "", name: String = "", address: String = "",
        alertType: AlertType = .unset, alertAction: AlertAction = .startAlerting, autoAnswer: Bool = false, queueType: QueueType? = nil,
        queueName: String? = nil, attributes: [(String, String)] = []
    ) {
        self.interactionId = interactionId
        self.interactionType = interactionType
        self.name = name
        self.address = address
        self.alertType = alertType
        self.alertAction = alertAction
        self.autoAnswer = autoAnswer
        self.queueType = queueType
        self.queueName = queueName
        self.attributes = attributes
        // A detail made in code is whole: every field is named.
        named = NamedKeys(Set(Self.deltaFields.map(\.key)))
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.interactionId == b.interactionId && a.interactionType == b.interactionType && a.name == b.name
            && a.address == b.address && a.alertType == b.alertType && a.alertAction == b.alertAction
            && a.autoAnswer == b.autoAnswer && a.queueType == b.queueType && a.queueName == b.queueName
            && a.attributes.elementsEqual(b.attributes, by: { $0 == $1 })
    }
}

public struct InteractionAlertingMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var details: [InteractionAlertDetail]

    public init(isDelta: Bool, details: [InteractionAlertDetail]) {
        self.isDelta = isDelta
        self.details = details
    }
}

/// One user of a `usersMessage`: its id, display name and the subscribed
/// properties exactly as the server sent them (JSON null means "cleared").
public struct UserEntry: Sendable, Equatable {
    public var id: String
    public var displayName: String?
    public var properties: [(String, JSONValue)]
    public var named: NamedKeys = []

    /// An entry made in code names what it carries: its properties, and its display name when it has one.
    public init(id: String, displayName: String? = nil, properties: [(String, JSONValue)] = []) {
        self.id = id
        self.displayName = displayName
        self.properties = properties
        named = NamedKeys(displayName == nil ? ["properties"] : ["properties", "displayName"])
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.id == b.id && a.displayName == b.displayName
            && a.properties.elementsEqual(b.properties, by: { $0.0 == $1.0 && $0.1 == $1.1 })
    }
}

public struct UsersMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var subscriptionId: String?
    public var added: [UserEntry]
    public var changed: [UserEntry]
    public var removed: [String]

    public init(isDelta: Bool, subscriptionId: String? = nil, added: [UserEntry] = [], changed: [UserEntry] = [], removed: [String] = []) {
        self.isDelta = isDelta
        self.subscriptionId = subscriptionId
        self.added = added
        self.changed = changed
        self.removed = removed
    }
}

public struct AsyncOperationCompletedMessage: Sendable, Equatable {
    public var requestId: String
    /// What the server reported, its errorId and message; nil on success.
    public var error: ICWSError?

    public init(requestId: String, error: ICWSError? = nil) {
        self.requestId = requestId
        self.error = error
    }
}

public struct SubscriptionStateMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var subscriptionId: String?
    public var state: SubscriptionState
    /// What the server reported, its errorId and message.
    public var error: ICWSError?

    public init(isDelta: Bool, subscriptionId: String? = nil, state: SubscriptionState, error: ICWSError? = nil) {
        self.isDelta = isDelta
        self.subscriptionId = subscriptionId
        self.state = state
        self.error = error
    }
}

/// One interaction of a `queueContentsMessage`: its id and attributes. A
/// value that is not a JSON string is kept as its compact JSON text.
public struct QueueInteraction: Sendable, Equatable {
    public var interactionId: String
    public var attributes: [(String, String)]
    public var conferenceParentId: String?
    /// Attributes the message sent as null (cleared).
    public var clearedAttributes: [String] = []
    public var named: NamedKeys = []

    public init(interactionId: String, attributes: [(String, String)] = [], conferenceParentId: String? = nil) {
        self.interactionId = interactionId
        self.attributes = attributes
        self.conferenceParentId = conferenceParentId
        named = NamedKeys(conferenceParentId == nil ? ["attributes"] : ["attributes", "conferenceParentId"])
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.interactionId == b.interactionId && a.conferenceParentId == b.conferenceParentId
            && a.attributes.elementsEqual(b.attributes, by: { $0 == $1 })
    }
}

/// `urn:inin.com:queues:queueContentsMessage`: the interactions on a
/// subscribed queue (isDelta:false: all of them; deltas: what changed).
public struct QueueContentsMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var subscriptionId: String
    public var added: [QueueInteraction]
    public var changed: [QueueInteraction]
    public var removed: [String]

    public init(isDelta: Bool, subscriptionId: String, added: [QueueInteraction] = [], changed: [QueueInteraction] = [], removed: [String] = []) {
        self.isDelta = isDelta
        self.subscriptionId = subscriptionId
        self.added = added
        self.changed = changed
        self.removed = removed
    }
}

/// One user's status (`userStatus`, in `userStatusMessage` and the GET).
public struct UserStatus: Sendable, Equatable {
    public var userId: String
    public var statusId: String
    public var notes: String?
    public var forwardNumber: String?
    /// `statusChanged` as sent (compact ISO-8601 UTC, e.g. 20240301T140000Z).
    public var statusChanged: String?
    public var loggedIn: Bool?
    public var onPhone: Bool?
    public var named: NamedKeys = []

    public init(userId: String, statusId: String, notes: String? = nil, forwardNumber: String? = nil, statusChanged: String? = nil, loggedIn: Bool? = nil, onPhone: Bool? = nil) {
        self.userId = userId
        self.statusId = statusId
        self.notes = notes
        self.forwardNumber = forwardNumber
        self.statusChanged = statusChanged
        self.loggedIn = loggedIn
        self.onPhone = onPhone
        // A status made in code names the fields it carries.
        var keys: Set<String> = ["userId", "statusId"]
        for (key, value) in [("notes", notes), ("forwardNumber", forwardNumber), ("statusChanged", statusChanged)] where value != nil { keys.insert(key) }
        if loggedIn != nil { keys.insert("loggedIn") }
        if onPhone != nil { keys.insert("onPhone") }
        named = NamedKeys(keys)
    }
}

/// One status of the catalogue (`statusMessage`).
public struct StatusMessage: Sendable, Equatable {
    public var statusId: String
    public var messageText: String?
    public var groupTag: String?
    /// The boolean flags the server sent (isAcdStatus, isSelectableStatus, ...), in order.
    public var flags: [(String, Bool)]
    public var named: NamedKeys = []

    public init(statusId: String, messageText: String? = nil, groupTag: String? = nil, flags: [(String, Bool)] = []) {
        self.statusId = statusId
        self.messageText = messageText
        self.groupTag = groupTag
        self.flags = flags
        // A status made in code names the fields it carries.
        var keys = Set(flags.map(\.0))
        if messageText != nil { keys.insert("messageText") }
        if groupTag != nil { keys.insert("groupTag") }
        named = NamedKeys(keys)
    }

    public func flag(_ name: String) -> Bool? { flags.first { $0.0 == name }?.1 }

    /// Sets a flag, or removes it for nil, keeping the order of the others.
    public mutating func setFlag(_ name: String, _ value: Bool?) {
        if let value {
            if let i = flags.firstIndex(where: { $0.0 == name }) { flags[i].1 = value } else { flags.append((name, value)) }
        } else {
            flags.removeAll { $0.0 == name }
        }
    }

    /// The flags the contract publishes, in its order.
    public static let flagNames = [
        "isSelectableStatus", "isAcdStatus", "isDoNotDisturbStatus", "isAfterCallWorkStatus", "isForwardStatus", "isPersistentStatus",
        "canHaveDate", "canHaveTime",
    ]

    public static func == (a: Self, b: Self) -> Bool {
        a.statusId == b.statusId && a.messageText == b.messageText && a.groupTag == b.groupTag && a.flags.elementsEqual(b.flags, by: { $0 == $1 })
    }
}

public struct UserStatusMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var statuses: [UserStatus]
    public init(isDelta: Bool, statuses: [UserStatus]) {
        self.isDelta = isDelta
        self.statuses = statuses
    }
}

public struct StatusMessagesMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var added: [StatusMessage]
    public var changed: [StatusMessage]
    public var removed: [String]
    public init(isDelta: Bool, added: [StatusMessage] = [], changed: [StatusMessage] = [], removed: [String] = []) {
        self.isDelta = isDelta
        self.added = added
        self.changed = changed
        self.removed = removed
    }
}

/// `statusMessagesUserAccessMessage`: which statuses each user may select.
public struct StatusAccessMessage: Sendable, Equatable {
    public struct Change: Sendable, Equatable {
        public var userId: String
        public var added: [String]
        public var removed: [String]
        public init(userId: String, added: [String] = [], removed: [String] = []) {
            self.userId = userId
            self.added = added
            self.removed = removed
        }
    }
    public var isDelta: Bool
    public var changes: [Change]
    public init(isDelta: Bool, changes: [Change]) {
        self.isDelta = isDelta
        self.changes = changes
    }
}

/// `effectiveStationChangeMessage`: the session's station changed (nil: none).
public struct EffectiveStationChangeMessage: Sendable, Equatable {
    public var stationId: String?
    public init(stationId: String?) { self.stationId = stationId }
}

/// Every ICWS message the bridge knows, plus anything else passed on raw.
public enum ICWSMessage: Sendable, Equatable {
    case connectionStateChange(ConnectionStateChangeMessage)
    case stationConnectionStateChange(StationConnectionStateChangeMessage)
    case interactionAlerting(InteractionAlertingMessage)
    case users(UsersMessage)
    case asyncOperationCompleted(AsyncOperationCompletedMessage)
    case subscriptionState(SubscriptionStateMessage)
    case queueContents(QueueContentsMessage)
    /// `queueSubscriptionStateMessage`: the state of a queue subscription.
    case queueSubscriptionState(SubscriptionStateMessage)
    case userStatus(UserStatusMessage)
    case statusMessages(StatusMessagesMessage)
    case statusAccess(StatusAccessMessage)
    case effectiveStationChange(EffectiveStationChangeMessage)
    /// `userActivationMessage` (contract v1.2's workgroups).
    case userActivation(UserActivationMessage)
    /// `statisticValueMessage` (contract v1.2's workgroup figures).
    case statisticValues(StatisticValueMessage)
    /// An unknown `__type`: never an error, the raw JSON goes on.
    case unknown(type: String, raw: JSONValue)

    /// How many entries the message carries: the users of a users message,
    /// the calls of an alerting message, else 1.
    public var entryCount: Int {
        switch self {
        case .users(let m): return max(1, m.added.count + m.changed.count + m.removed.count)
        case .interactionAlerting(let m): return max(1, m.details.count)
        case .statisticValues(let m): return max(1, m.changes.count)
        default: return 1
        }
    }

    public enum TypeURN {
        public static let connectionStateChange = "urn:inin.com:connection:connectionStateChangeMessage"
        public static let stationConnectionStateChange = "urn:inin.com:connection:stationConnectionStateChangeMessage"
        public static let interactionAlerting = "urn:inin.com:interactions:interactionAlertingMessage"
        public static let users = "urn:inin.com:configuration.people:usersMessage"
        public static let asyncOperationCompleted = "urn:inin.com:messaging:asyncOperationCompletedMessage"
        public static let subscriptionState = "urn:inin.com:messaging:subscriptionStateMessage"
        public static let queueContents = "urn:inin.com:queues:queueContentsMessage"
        public static let queueSubscriptionState = "urn:inin.com:queues:queueSubscriptionStateMessage"
        public static let userStatus = "urn:inin.com:status:userStatusMessage"
        public static let statusMessages = "urn:inin.com:status:statusMessagesMessage"
        public static let statusAccess = "urn:inin.com:status:statusMessagesUserAccessMessage"
        public static let effectiveStationChange = "urn:inin.com:connection:effectiveStationChangeMessage"
        public static let userActivation = "urn:inin.com:activations:userActivationMessage"
        public static let statisticValues = "urn:inin.com:statistics:statisticValueMessage"
    }

    /// Decodes one message from its JSON text (one SSE `data:` or one poll element).
    public static func decode(text: some Collection<UInt8>) throws(MessageDecodeError) -> ICWSMessage {
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch { throw MessageDecodeError(field: "", reason: error.description) }
        return try decode(json)
    }

    public static func decode(_ json: JSONValue) throws(MessageDecodeError) -> ICWSMessage {
        guard case .object = json else { throw MessageDecodeError(field: "", reason: "a message must be a JSON object") }
        guard let type = json["__type"]?.stringValue else {
            throw MessageDecodeError(field: "__type", reason: "missing")
        }
        do throws(MessageDecodeError) {
            return try decodeKnown(type: type, json)
        } catch {
            var e = error
            e.messageType = type
            throw e
        }
    }

    private static func decodeKnown(type: String, _ json: JSONValue) throws(MessageDecodeError) -> ICWSMessage {
        var r = FieldReader(json, prefix: "")
        let isDelta = try r.optionalBool("isDelta") ?? false
        switch type {
        case TypeURN.connectionStateChange:
            return .connectionStateChange(
                ConnectionStateChangeMessage(
                    isDelta: isDelta,
                    previousConnectionState: try r.optionalEnum("previousConnectionState") ?? 0,
                    newConnectionState: try r.requiredEnum("newConnectionState"),
                    reason: try r.optionalString("reason") ?? "",
                    shouldReconnect: try r.optionalBool("shouldReconnect")))
        case TypeURN.stationConnectionStateChange:
            let previous = try json["previousStationInfo"].flatMap { v throws(MessageDecodeError) in
                v.isNull ? nil : try StationInformation.decode(v, field: "previousStationInfo")
            }
            guard let newJSON = json["newStationInfo"], !newJSON.isNull else {
                throw MessageDecodeError(field: "newStationInfo", reason: "missing")
            }
            return .stationConnectionStateChange(
                StationConnectionStateChangeMessage(
                    isDelta: isDelta, previousStationInfo: previous,
                    newStationInfo: try StationInformation.decode(newJSON, field: "newStationInfo")))
        case TypeURN.interactionAlerting:
            let items = try r.requiredArray("alertingInteractionDetails")
            var details: [InteractionAlertDetail] = []
            details.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                details.append(try decodeAlertDetail(item, field: "alertingInteractionDetails[\(i)]"))
            }
            return .interactionAlerting(InteractionAlertingMessage(isDelta: isDelta, details: details))
        case TypeURN.users:
            return .users(
                UsersMessage(
                    isDelta: isDelta,
                    subscriptionId: try r.optionalString("subscriptionId"),
                    added: try decodeUsers(json["added"], field: "added"),
                    changed: try decodeUsers(json["changed"], field: "changed"),
                    removed: try decodeRemoved(json["removed"])))
        case TypeURN.asyncOperationCompleted:
            return .asyncOperationCompleted(
                AsyncOperationCompletedMessage(requestId: try r.requiredString("requestId"), error: ICWSError.reported(json["error"])))
        case TypeURN.subscriptionState, TypeURN.queueSubscriptionState:
            let m = SubscriptionStateMessage(
                isDelta: isDelta, subscriptionId: try r.optionalString("subscriptionId"),
                state: try r.optionalEnum("state") ?? 0, error: ICWSError.reported(json["error"]))
            return type == TypeURN.subscriptionState ? .subscriptionState(m) : .queueSubscriptionState(m)
        case TypeURN.userStatus:
            var statuses: [UserStatus] = []
            for (i, item) in try r.requiredArray("userStatusList").enumerated() {
                statuses.append(try UserStatus.decode(item, field: "userStatusList[\(i)]"))
            }
            return .userStatus(UserStatusMessage(isDelta: isDelta, statuses: statuses))
        case TypeURN.statusMessages:
            func list(_ key: String) throws(MessageDecodeError) -> [StatusMessage] {
                guard let v = json[key], !v.isNull else { return [] }
                guard case .array(let items) = v else { throw MessageDecodeError(field: key, reason: "expected an array") }
                var out: [StatusMessage] = []
                for (i, item) in items.enumerated() { out.append(try StatusMessage.decode(item, field: "\(key)[\(i)]")) }
                return out
            }
            return .statusMessages(
                StatusMessagesMessage(
                    isDelta: isDelta, added: try list("statusMessagesAdded"), changed: try list("statusMessagesChanged"),
                    removed: try decodeStrings(json["statusMessagesRemoved"], field: "statusMessagesRemoved")))
        case TypeURN.statusAccess:
            var changes: [StatusAccessMessage.Change] = []
            for (i, item) in try r.requiredArray("statusMessagesUserAccessChanges").enumerated() {
                let f = "statusMessagesUserAccessChanges[\(i)]"
                guard case .object = item else { throw MessageDecodeError(field: f, reason: "expected an object") }
                var c = FieldReader(item, prefix: f)
                changes.append(
                    StatusAccessMessage.Change(
                        userId: try c.requiredString("userId"),
                        added: try decodeStrings(item["statusMessagesAdded"], field: f + ".statusMessagesAdded"),
                        removed: try decodeStrings(item["statusMessagesRemoved"], field: f + ".statusMessagesRemoved")))
            }
            return .statusAccess(StatusAccessMessage(isDelta: isDelta, changes: changes))
        case TypeURN.effectiveStationChange:
            let station = json["effectiveStation"]
            let id = station?["stationId"]?["id"]?.stringValue ?? station?["stationId"]?.stringValue
            return .effectiveStationChange(EffectiveStationChangeMessage(stationId: (station?.isNull ?? true) ? nil : id))
        case TypeURN.queueContents:
            return .queueContents(
                QueueContentsMessage(
                    isDelta: isDelta, subscriptionId: try r.optionalString("subscriptionId") ?? "",
                    added: try decodeQueueInteractions(json["interactionsAdded"], field: "interactionsAdded"),
                    changed: try decodeQueueInteractions(json["interactionsChanged"], field: "interactionsChanged"),
                    removed: try decodeRemovedInteractions(json["interactionsRemoved"])))
        case TypeURN.userActivation:
            return .userActivation(try decodeUserActivation(json, isDelta: isDelta))
        case TypeURN.statisticValues:
            return .statisticValues(try decodeStatisticValues(json, isDelta: isDelta))
        default:
            return .unknown(type: type, raw: json)
        }
    }

    private static func decodeAlertDetail(_ json: JSONValue, field: String) throws(MessageDecodeError)
        -> InteractionAlertDetail
    {
        guard case .object = json else { throw MessageDecodeError(field: field, reason: "expected an object") }
        var r = FieldReader(json, prefix: field)
        var detail = InteractionAlertDetail(
            interactionId: try r.requiredString("interactionId"),
            interactionType: try r.optionalString("interactionType") ?? "",
            name: try r.optionalString("name") ?? "",
            address: try r.optionalString("address") ?? "",
            alertType: try r.optionalEnum("alertType") ?? 0,
            alertAction: try r.requiredEnum("alertAction"),
            autoAnswer: try r.optionalBool("autoAnswer") ?? false)
        if let queue = json["monitoredQueue"], case .object = queue {
            var q = FieldReader(queue, prefix: field + ".monitoredQueue")
            detail.queueType = try q.optionalEnum("queueType")
            detail.queueName = try q.optionalString("queueName")
        }
        detail.named = NamedKeys(of: json)
        if let attrs = json["attributes"] {
            switch attrs {
            case .object(let members):
                for (k, v) in members {
                    switch v {
                    case .string(let s): detail.attributes.append((k, s))
                    case .null: detail.clearedAttributes.append(k)
                    case .int(let i): detail.attributes.append((k, String(i)))
                    case .bool(let b): detail.attributes.append((k, b ? "true" : "false"))
                    default: detail.attributes.append((k, v.serialized()))
                    }
                }
            case .null: break
            default: throw MessageDecodeError(field: field + ".attributes", reason: "expected an object")
            }
        }
        return detail
    }

    private static func decodeUsers(_ json: JSONValue?, field: String) throws(MessageDecodeError) -> [UserEntry] {
        guard let json, !json.isNull else { return [] }
        guard case .array(let items) = json else { throw MessageDecodeError(field: field, reason: "expected an array") }
        var users: [UserEntry] = []
        users.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .object(let members) = item else {
                throw MessageDecodeError(field: "\(field)[\(i)]", reason: "expected an object")
            }
            guard let cid = item["configurationId"], case .object = cid,
                let id = cid["id"]?.stringValue, !id.isEmpty
            else { throw MessageDecodeError(field: "\(field)[\(i)].configurationId.id", reason: "missing") }
            var entry = UserEntry(id: id, displayName: cid["displayName"]?.stringValue)
            // A user's properties are merged one by one; its display name is a field.
            entry.named = NamedKeys(cid["displayName"] == nil ? ["properties"] : ["properties", "displayName"])
            entry.properties.reserveCapacity(members.count - 1)
            for (k, v) in members where k != "configurationId" && k != "__type" {
                entry.properties.append((k, v))
            }
            users.append(entry)
        }
        return users
    }

    /// `interactionsAdded` / `interactionsChanged`; a missing array is empty.
    private static func decodeQueueInteractions(_ json: JSONValue?, field: String) throws(MessageDecodeError) -> [QueueInteraction] {
        guard let json, !json.isNull else { return [] }
        guard case .array(let items) = json else { throw MessageDecodeError(field: field, reason: "expected an array") }
        var out: [QueueInteraction] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let f = "\(field)[\(i)]"
            guard case .object = item else { throw MessageDecodeError(field: f, reason: "expected an object") }
            var r = FieldReader(item, prefix: f)
            var entry = QueueInteraction(interactionId: try r.requiredString("interactionId"))
            entry.conferenceParentId = try r.optionalString("conferenceParentId")
            entry.named = NamedKeys(of: item)
            if let attrs = item["attributes"], !attrs.isNull {
                guard case .object(let members) = attrs else { throw MessageDecodeError(field: f + ".attributes", reason: "expected an object") }
                for (k, v) in members {
                    if v.isNull { entry.clearedAttributes.append(k) } else { entry.attributes.append((k, v.stringValue ?? v.serialized())) }
                }
            }
            out.append(entry)
        }
        return out
    }

    /// An array of strings; a missing one is empty.
    private static func decodeStrings(_ json: JSONValue?, field: String) throws(MessageDecodeError) -> [String] {
        guard let json, !json.isNull else { return [] }
        guard case .array(let items) = json else { throw MessageDecodeError(field: field, reason: "expected an array") }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard let s = item.stringValue else { throw MessageDecodeError(field: "\(field)[\(i)]", reason: "expected a string") }
            out.append(s)
        }
        return out
    }

    private static func decodeRemovedInteractions(_ json: JSONValue?) throws(MessageDecodeError) -> [String] {
        guard let json, !json.isNull else { return [] }
        guard case .array(let items) = json else { throw MessageDecodeError(field: "interactionsRemoved", reason: "expected an array") }
        var ids: [String] = []
        for (i, item) in items.enumerated() {
            guard let s = item.stringValue ?? item["interactionId"]?.stringValue else {
                throw MessageDecodeError(field: "interactionsRemoved[\(i)]", reason: "expected an interaction id")
            }
            ids.append(s)
        }
        return ids
    }

    private static func decodeRemoved(_ json: JSONValue?) throws(MessageDecodeError) -> [String] {
        guard let json, !json.isNull else { return [] }
        guard case .array(let items) = json else { throw MessageDecodeError(field: "removed", reason: "expected an array") }
        var ids: [String] = []
        for (i, item) in items.enumerated() {
            switch item {
            case .string(let s): ids.append(s)
            // Some peers see removed users as configuration ids; accept both.
            case .object:
                if let s = item["configurationId"]?["id"]?.stringValue ?? item["id"]?.stringValue {
                    ids.append(s)
                } else {
                    throw MessageDecodeError(field: "removed[\(i)]", reason: "expected a user id")
                }
            default: throw MessageDecodeError(field: "removed[\(i)]", reason: "expected a user id")
            }
        }
        return ids
    }
}

/// Reads typed fields out of a JSON object with errors that name the field.
package struct FieldReader {
    let json: JSONValue
    let prefix: String

    package init(_ json: JSONValue, prefix: String) {
        self.json = json
        self.prefix = prefix
    }

    func name(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }

    func value(_ key: String) -> JSONValue? {
        guard let v = json[key], !v.isNull else { return nil }
        return v
    }

    package mutating func optionalString(_ key: String) throws(MessageDecodeError) -> String? {
        guard let v = value(key) else { return nil }
        switch v {
        case .string(let s): return s
        case .int(let i): return String(i)
        default: throw MessageDecodeError(field: name(key), reason: "expected a string")
        }
    }

    package mutating func requiredString(_ key: String) throws(MessageDecodeError) -> String {
        guard let s = try optionalString(key) else { throw MessageDecodeError(field: name(key), reason: "missing") }
        return s
    }

    package mutating func optionalBool(_ key: String) throws(MessageDecodeError) -> Bool? {
        guard let v = value(key) else { return nil }
        switch v {
        case .bool(let b): return b
        case .string(let s) where s.lowercased() == "true": return true
        case .string(let s) where s.lowercased() == "false": return false
        default: throw MessageDecodeError(field: name(key), reason: "expected a boolean")
        }
    }

    package mutating func optionalEnum<E: ICWSEnumeration>(_ key: String) throws(MessageDecodeError) -> E? {
        guard let v = value(key) else { return nil }
        return E(rawValue: try ICWSEnum.decode(v, names: E.names, field: name(key)))
    }

    package mutating func requiredEnum<E: ICWSEnumeration>(_ key: String) throws(MessageDecodeError) -> E {
        guard let v: E = try optionalEnum(key) else { throw MessageDecodeError(field: name(key), reason: "missing") }
        return v
    }

    package mutating func optionalEnumArray<E: ICWSEnumeration>(_ key: String) throws(MessageDecodeError) -> [E]? {
        guard let v = value(key) else { return nil }
        guard case .array(let items) = v else { throw MessageDecodeError(field: name(key), reason: "expected an array") }
        var out: [E] = []
        for (i, item) in items.enumerated() {
            out.append(E(rawValue: try ICWSEnum.decode(item, names: E.names, field: name(key) + "[\(i)]")))
        }
        return out
    }

    package mutating func requiredArray(_ key: String) throws(MessageDecodeError) -> [JSONValue] {
        guard let v = value(key) else { throw MessageDecodeError(field: name(key), reason: "missing") }
        guard case .array(let items) = v else { throw MessageDecodeError(field: name(key), reason: "expected an array") }
        return items
    }
}

extension UserStatus {
    public static func decode(_ json: JSONValue, field: String) throws(MessageDecodeError) -> UserStatus {
        guard case .object = json else { throw MessageDecodeError(field: field, reason: "expected an object") }
        var r = FieldReader(json, prefix: field)
        // A delta may leave the status id out (only `onPhone` changed, say).
        var status = UserStatus(
            userId: try r.requiredString("userId"), statusId: try r.optionalString("statusId") ?? "", notes: try r.optionalString("notes"),
            forwardNumber: try r.optionalString("forwardNumber"), statusChanged: try r.optionalString("statusChanged"),
            loggedIn: try r.optionalBool("loggedIn"), onPhone: try r.optionalBool("onPhone"))
        status.named = NamedKeys(of: json)
        return status
    }
}

extension StatusMessage {
    public static func decode(_ json: JSONValue, field: String) throws(MessageDecodeError) -> StatusMessage {
        guard case .object = json else { throw MessageDecodeError(field: field, reason: "expected an object") }
        var r = FieldReader(json, prefix: field)
        var s = StatusMessage(
            statusId: try r.requiredString("statusId"), messageText: try r.optionalString("messageText"), groupTag: try r.optionalString("groupTag"))
        for name in flagNames {
            if let b = try r.optionalBool(name) { s.flags.append((name, b)) }
        }
        s.named = NamedKeys(of: json)
        return s
    }
}
