/// What a client asked the station connection to be: one of the four ICWS
/// station kinds plus the shared settings. Kept so it can be re-applied after
/// every new session.
public struct StationSettings: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case workstation, remoteWorkstation, remoteNumber, stationless

        var typeURN: String {
            switch self {
            case .workstation: return "urn:inin.com:connection:workstationSettings"
            case .remoteWorkstation: return "urn:inin.com:connection:remoteWorkstationSettings"
            case .remoteNumber: return "urn:inin.com:connection:remoteNumberSettings"
            case .stationless: return "urn:inin.com:connection:stationlessSettings"
            }
        }

        public init?(typeURN: String) {
            guard let k = Kind.allCases.first(where: { $0.typeURN.lowercased() == typeURN.lowercased() }) else {
                return nil
            }
            self = k
        }
    }

    public var kind: Kind
    public var workstation: String?
    public var remoteNumber: String?
    public var persistentConnection: Bool?
    /// ICWS media type numbers (1 call, 2 chat, ...).
    public var supportedMediaTypes: [MediaType]?
    public var readyForInteractions: Bool
    public var stationConnectionMode: StationConnectionMode?

    public init(
        kind: Kind, workstation: String? = nil, remoteNumber: String? = nil, persistentConnection: Bool? = nil,
        supportedMediaTypes: [MediaType]? = nil, readyForInteractions: Bool = false, stationConnectionMode: StationConnectionMode? = nil
    ) {
        self.kind = kind
        self.workstation = workstation
        self.remoteNumber = remoteNumber
        self.persistentConnection = persistentConnection
        self.supportedMediaTypes = supportedMediaTypes
        self.readyForInteractions = readyForInteractions
        self.stationConnectionMode = stationConnectionMode
    }

    /// Checks what ICWS would refuse anyway, naming the setting.
    public func validate() throws(StationSettingsError) {
        switch kind {
        case .workstation, .remoteWorkstation:
            guard let w = workstation, !w.isEmpty else { throw StationSettingsError(key: "workstation", reason: "is required for a \(kind.rawValue) station") }
        case .remoteNumber:
            guard let r = remoteNumber, !r.isEmpty else { throw StationSettingsError(key: "remoteNumber", reason: "is required for a remoteNumber station") }
        case .stationless: break
        }
        if kind != .remoteNumber, persistentConnection != nil {
            throw StationSettingsError(key: "persistentConnection", reason: "applies only to a remoteNumber station")
        }
        if kind == .workstation || kind == .stationless, remoteNumber != nil {
            throw StationSettingsError(key: "remoteNumber", reason: "does not apply to a \(kind.rawValue) station")
        }
        if kind == .remoteNumber || kind == .stationless, workstation != nil {
            throw StationSettingsError(key: "workstation", reason: "does not apply to a \(kind.rawValue) station")
        }
        if let mode = stationConnectionMode, !mode.isKnown {
            throw StationSettingsError(key: "stationConnectionMode", reason: "must be 0, 1 or 2")
        }
        if let media = supportedMediaTypes, let bad = media.first(where: { $0 == .unset || !$0.isKnown }) {
            throw StationSettingsError(key: "supportedMediaTypes", reason: "unknown media type \(bad)")
        }
    }

    /// The JSON body of `PUT /icws/{sessionId}/connection/station`.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [("__type", .string(kind.typeURN))]
        if let workstation { members.append(("workstation", .string(workstation))) }
        if let remoteNumber { members.append(("remoteNumber", .string(remoteNumber))) }
        if let persistentConnection { members.append(("persistentConnection", .bool(persistentConnection))) }
        if let supportedMediaTypes {
            members.append(("supportedMediaTypes", .array(supportedMediaTypes.map { .int(Int64($0.rawValue)) })))
        }
        members.append(("readyForInteractions", .bool(readyForInteractions)))
        if let stationConnectionMode { members.append(("stationConnectionMode", .int(Int64(stationConnectionMode.rawValue)))) }
        return .object(members)
    }

    /// Reads a station PUT body (used by the simulator).
    public static func decode(_ json: JSONValue) throws(StationSettingsError) -> StationSettings {
        guard let type = json["__type"]?.stringValue else { throw StationSettingsError(key: "__type", reason: "is required") }
        guard let kind = Kind(typeURN: type) else { throw StationSettingsError(key: "__type", reason: "unknown station settings type") }
        var s = StationSettings(kind: kind)
        var r = FieldReader(json, prefix: "")
        do throws(MessageDecodeError) {
            s.workstation = try r.optionalString("workstation")
            s.remoteNumber = try r.optionalString("remoteNumber")
            s.persistentConnection = try r.optionalBool("persistentConnection")
            s.supportedMediaTypes = try r.optionalEnumArray("supportedMediaTypes")
            s.readyForInteractions = try r.optionalBool("readyForInteractions") ?? false
            s.stationConnectionMode = try r.optionalEnum("stationConnectionMode")
        } catch {
            throw StationSettingsError(key: error.field, reason: error.reason)
        }
        return s
    }
}

public struct StationSettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }
    public var description: String { "\(key) \(reason)" }
}

/// The users subscription the bridge keeps (`PUT .../subscriptions/configuration/users/{id}`).
public struct UsersSubscription: Sendable, Equatable {
    public var subscriptionId: String
    public var configurationIds: [String]
    public var properties: [String]
    public var rightsFilter: String

    public init(
        subscriptionId: String = "icws-bridge-users", configurationIds: [String] = ["*"],
        properties: [String] = ["extension", "statusText"], rightsFilter: String = "view"
    ) {
        self.subscriptionId = subscriptionId
        self.configurationIds = configurationIds
        self.properties = properties
        self.rightsFilter = rightsFilter
    }

    public var json: JSONValue {
        .object([
            ("configurationIds", .array(configurationIds.map { .string($0) })),
            ("properties", .array(properties.map { .string($0) })),
            ("rightsFilter", .string(rightsFilter)),
        ])
    }
}

/// What the bridge subscribes to on every new session.
public struct SubscriptionSettings: Sendable, Equatable {
    /// Attribute names for interaction-alerting; empty means no alerting subscription.
    public var alertingAttributeNames: [String]
    /// The users subscription, or nil for none.
    public var users: UsersSubscription?
    /// Attribute names asked for on the agent's own queue beside the ones the
    /// interaction objects need; nil for no queue subscription.
    public var interactionAttributes: [String]?
    /// The three status subscriptions (own status, the catalogue, own access).
    public var status: Bool
    /// The activation subscription of the user's workgroups (contract v1.2).
    public var workgroups: Bool
    /// The statistic-values subscription of the workgroups' figures (contract v1.2).
    public var statistics: Bool

    public init(
        alertingAttributeNames: [String] = ["Eic_RemoteName", "Eic_WorkgroupName"], users: UsersSubscription? = UsersSubscription(),
        interactionAttributes: [String]? = nil, status: Bool = false, workgroups: Bool = false, statistics: Bool = false
    ) {
        self.status = status
        self.workgroups = workgroups
        self.statistics = statistics
        self.alertingAttributeNames = alertingAttributeNames
        self.users = users
        self.interactionAttributes = interactionAttributes
    }
}
