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
    /// The request for a configuration, or nil when none is wanted.
    public let request: @Sendable (SubscriptionSettings) -> SubscriptionRequest?

    public init(
        name: String, restoreOrder: Int, consumes: Set<String>,
        request: @escaping @Sendable (SubscriptionSettings) -> SubscriptionRequest?
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
        ) { _ in SubscriptionRequest(path: "connection/station") },
        SubscriptionUnit(
            name: "alerting", restoreOrder: 20, consumes: [ICWSMessage.TypeURN.interactionAlerting]
        ) { settings in
            guard !settings.alertingAttributeNames.isEmpty else { return nil }
            return SubscriptionRequest(
                path: "interaction-alerting",
                body: .object([("attributeNames", .array(settings.alertingAttributeNames.map { .string($0) }))]))
        },
        SubscriptionUnit(
            name: "users", restoreOrder: 200, consumes: [ICWSMessage.TypeURN.users]
        ) { settings in
            settings.users.map {
                SubscriptionRequest(path: "configuration/users/\(ICWSClient.pathComponent($0.subscriptionId))", body: $0.json)
            }
        },
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
}
