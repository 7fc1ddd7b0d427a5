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
    /// The request for a configuration and what the session knows, or nil when none is wanted.
    public let request: @Sendable (SubscriptionSettings, SessionFacts) -> SubscriptionRequest?

    public init(
        name: String, restoreOrder: Int, consumes: Set<String>,
        request: @escaping @Sendable (SubscriptionSettings, SessionFacts) -> SubscriptionRequest?
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

    /// Every subscription the daemon keeps.
    public static let standard: [SubscriptionUnit] = contract + workgroupUnits

    /// The subscriptions of contract v1 and v1.1.
    public static let contract: [SubscriptionUnit] = [
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
        ) { settings, facts in
            guard let extra = settings.interactionAttributes else { return nil }
            var names = SubscriptionUnit.interactionAttributes
            for n in extra where !names.contains(where: { $0.lowercased() == n.lowercased() }) { names.append(n) }
            return SubscriptionRequest(
                path: "queues/\(SubscriptionUnit.myInteractions)",
                body: .object([
                    ("queueIds", .array([.object([("queueType", .enumValue(QueueType.user)), ("queueName", .string(facts.userId))])])),
                    ("attributeNames", .array(names.map { .string($0) })),
                ]))
        },
        SubscriptionUnit(name: "user-status", restoreOrder: 40, consumes: [ICWSMessage.TypeURN.userStatus]) { settings, facts in
            settings.status
                ? SubscriptionRequest(path: "status/user-statuses", body: .object([("userIds", .array([.string(facts.userId)]))])) : nil
        },
        SubscriptionUnit(name: "status-messages", restoreOrder: 41, consumes: [ICWSMessage.TypeURN.statusMessages]) { settings, _ in
            settings.status ? SubscriptionRequest(path: "status/status-messages") : nil
        },
        SubscriptionUnit(name: "status-access", restoreOrder: 42, consumes: [ICWSMessage.TypeURN.statusAccess]) { settings, facts in
            settings.status
                ? SubscriptionRequest(path: "status/status-messages-user-access", body: .object([("userIds", .array([.string(facts.userId)]))])) : nil
        },
    ]

    /// The subscriptions of contract v1.2: the activations of the user's
    /// workgroups, and one statistic-values subscription with every key of
    /// every workgroup (made again whenever the set of workgroups changes).
    public static let workgroupUnits: [SubscriptionUnit] = [
        SubscriptionUnit(name: "workgroups", restoreOrder: 50, consumes: [ICWSMessage.TypeURN.userActivation]) { settings, facts in
            settings.workgroups
                ? SubscriptionRequest(
                    path: "activations/users/\(SubscriptionUnit.activations)",
                    body: .object([("userId", .string(facts.userId)), ("workgroupIds", .array([.string("*")]))])) : nil
        },
        SubscriptionUnit(name: "statistics", restoreOrder: 300, consumes: [ICWSMessage.TypeURN.statisticValues]) { settings, facts in
            guard settings.statistics, !facts.workgroups.isEmpty else { return nil }
            let keys = facts.workgroups.flatMap(WorkgroupStatistic.keys(workgroup:))
            return SubscriptionRequest(path: "statistics/statistic-values", body: .object([("statisticKeys", .array(keys.map(\.json)))]))
        },
    ]

    /// The id of the activation subscription.
    public static let activations = "icws-bridge-activations"

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

/// What the session knows that a subscription's request may need.
public struct SessionFacts: Sendable, Equatable {
    /// The session's user id.
    public var userId: String
    /// The ids of the user's workgroups, once read (empty before).
    public var workgroups: [String]

    public init(userId: String, workgroups: [String] = []) {
        self.userId = userId
        self.workgroups = workgroups
    }
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
