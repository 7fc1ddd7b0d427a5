/// One subscription the bridge keeps on every session: what it asks the
/// server for, which messages it brings, and where it comes in the restore.
///
/// Adding a subscription means adding a unit to `SubscriptionUnit.standard`
/// (or to the list a supervisor is given); the session machine makes,
/// re-makes and drops units without knowing what they are.
public struct SubscriptionUnit: Sendable {
    /// A short name for logs and status ("station", "alerting", "users").
    public let name: String
    /// Place in the restore after a new session: lower first. The station
    /// itself is re-applied at `SubscriptionUnit.stationRestoreOrder`.
    public let restoreOrder: Int
    /// The `__type`s of the messages this subscription brings.
    public let consumes: Set<String>
    /// The request for a configuration and the session's user id, or nil when none is wanted.
    public let request: @Sendable (SubscriptionSettings, _ userId: String) -> SubscriptionRequest?

    public init(
        name: String, restoreOrder: Int, consumes: Set<String>,
        request: @escaping @Sendable (SubscriptionSettings, _ userId: String) -> SubscriptionRequest?
    ) {
        self.name = name
        self.restoreOrder = restoreOrder
        self.consumes = consumes
        self.request = request
    }

    /// Where the station is re-applied among the units: after the station
    /// and alerting subscriptions, before the users subscription (whose
    /// snapshot can take a large server a while), so an agent can take calls
    /// again at once.
    public static let stationRestoreOrder = 100

    /// The subscriptions of contract v1.
    public static let standard: [SubscriptionUnit] = [
        SubscriptionUnit(
            name: "station", restoreOrder: 10, consumes: [ICWSMessage.TypeURN.stationConnectionStateChange]
        ) { _, _ in SubscriptionRequest(path: "connection/station") },
        SubscriptionUnit(
            name: "alerting", restoreOrder: 20, consumes: [ICWSMessage.TypeURN.interactionAlerting]
        ) { settings, _ in
            guard !settings.alertingAttributeNames.isEmpty else { return nil }
            return SubscriptionRequest(
                path: "interaction-alerting",
                body: .object([("attributeNames", .array(settings.alertingAttributeNames.map { .string($0) }))]))
        },
        SubscriptionUnit(
            name: "users", restoreOrder: 200, consumes: [ICWSMessage.TypeURN.users]
        ) { settings, _ in
            settings.users.map {
                SubscriptionRequest(path: "configuration/users/\(ICWSClient.pathComponent($0.subscriptionId))", body: $0.json)
            }
        },
        SubscriptionUnit(
            name: "interactions", restoreOrder: 30,
            consumes: [ICWSMessage.TypeURN.queueContents, ICWSMessage.TypeURN.queueSubscriptionState]
        ) { settings, userId in
            guard let extra = settings.interactionAttributes else { return nil }
            var names = SubscriptionUnit.interactionAttributes
            for n in extra where !names.contains(where: { $0.lowercased() == n.lowercased() }) { names.append(n) }
            return SubscriptionRequest(
                path: "queues/\(SubscriptionUnit.myInteractions)",
                body: .object([
                    ("queueIds", .array([.object([("queueType", .enumValue(QueueType.user)), ("queueName", .string(userId))])])),
                    ("attributeNames", .array(names.map { .string($0) })),
                ]))
        },
        SubscriptionUnit(name: "user-status", restoreOrder: 40, consumes: [ICWSMessage.TypeURN.userStatus]) { settings, userId in
            settings.status
                ? SubscriptionRequest(path: "status/user-statuses", body: .object([("userIds", .array([.string(userId)]))])) : nil
        },
        SubscriptionUnit(name: "status-messages", restoreOrder: 41, consumes: [ICWSMessage.TypeURN.statusMessages]) { settings, _ in
            settings.status ? SubscriptionRequest(path: "status/status-messages") : nil
        },
        SubscriptionUnit(name: "status-access", restoreOrder: 42, consumes: [ICWSMessage.TypeURN.statusAccess]) { settings, userId in
            settings.status
                ? SubscriptionRequest(path: "status/status-messages-user-access", body: .object([("userIds", .array([.string(userId)]))])) : nil
        },
    ]

    /// The id of the subscription to the agent's own user queue.
    public static let myInteractions = "icws-bridge-my-interactions"

    /// The attributes the interaction objects' properties come from (always asked for).
    public static let interactionAttributes = [
        "Eic_State", "Eic_ObjectType", "Eic_CallDirection", "Eic_RemoteName", "Eic_RemoteAddress", "Eic_Muted",
        "Eic_Capabilities", "Eic_ConferenceId", "Eic_InitiationTime",
        // Contract v1.2.
        "Eic_WorkgroupName", "Eic_WrapUpCode", "Eic_AccountCode", "Eic_ConsultCallId", "Eic_ConsultCallSpeakTo",
        "Eic_ConsultingCallId", "Eic_RecordingsAutoResumeTime", "Eic_WrapupConnectionSegments",
    ]
}

/// A subscription as the server sees it: `PUT /messaging/subscriptions/{path}`
/// with `body` makes it, `DELETE` of the same path drops it.
public struct SubscriptionRequest: Sendable, Equatable {
    /// Below `/messaging/subscriptions/`.
    public var path: String
    public var body: JSONValue?

    public init(path: String, body: JSONValue? = nil) {
        self.path = path
        self.body = body
    }
}

/// What the machine knows of one unit on the current session.
public enum SubscriptionUnitState: Sendable, Equatable {
    /// Not asked for on this session (none wanted, or not yet reached).
    case idle
    /// A request is on its way.
    case pending
    /// The server accepted the subscription at this path.
    case active(path: String)
    /// The server refused it; the reason as `LastError` showed it.
    case failed(String)
    /// The server reported it suspended (shown, not re-made).
    case suspended(path: String)
    /// The server reported it faulted (made again with the backoff).
    case faulted(path: String)

    /// As `Session.Subscriptions` shows it.
    public var health: SubscriptionHealth {
        switch self {
        case .idle, .pending: return .none
        case .active: return .normal
        case .suspended: return .suspended
        case .failed, .faulted: return .faulted
        }
    }

    var path: String? {
        switch self {
        case .active(let p), .suspended(let p), .faulted(let p): return p
        default: return nil
        }
    }
}
