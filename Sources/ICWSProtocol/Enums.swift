/// ICWS enumerations as Swift enums. The server sends each as a number (or,
/// from some versions, its name); a value this bridge does not know is kept
/// as `unknown(value)`, never an error, and goes on to the bus unchanged.
/// The case for the value ICWS calls "none" is `unset` (a case named `none`
/// would be mistaken for `Optional.none`).
public protocol ICWSEnumeration: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral
where IntegerLiteralType == UInt32 {
    /// The ICWS names, indexed by value.
    static var names: [String] { get }
    init(rawValue: UInt32)
    var rawValue: UInt32 { get }
}

extension ICWSEnumeration {
    public init(integerLiteral value: UInt32) { self.init(rawValue: value) }
    /// The ICWS name, or the number for a value this bridge does not know.
    public var name: String { Int(rawValue) < Self.names.count ? Self.names[Int(rawValue)] : String(rawValue) }
    public var isKnown: Bool { Int(rawValue) < Self.names.count }
    public var description: String { name }

    /// The value as the server sends it (a JSON number).
    public var json: JSONValue { .int(Int64(rawValue)) }

    /// The value of an ICWS name (any case), or nil for a name not in the table.
    public init?(name: String) {
        let lower = name.lowercased()
        guard let i = Self.names.firstIndex(where: { $0.lowercased() == lower }) else { return nil }
        self.init(rawValue: UInt32(i))
    }
}


/// The session's connection (`connectionState`).
public enum ConnectionState: ICWSEnumeration {
    case unset, up, down
    case unknown(UInt32)

    public static let names = ["none", "up", "down"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .unset
        case 1: self = .up
        case 2: self = .down
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .unset: return 0
        case .up: return 1
        case .down: return 2
        case .unknown(let v): return v
        }
    }
}

/// How the station is connected (`stationSetting`).
public enum StationSetting: ICWSEnumeration {
    case unset, workstation, remoteWorkstation, remoteNumber
    case unknown(UInt32)

    public static let names = ["none", "workstation", "remoteWorkstation", "remoteNumber"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .unset
        case 1: self = .workstation
        case 2: self = .remoteWorkstation
        case 3: self = .remoteNumber
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .unset: return 0
        case .workstation: return 1
        case .remoteWorkstation: return 2
        case .remoteNumber: return 3
        case .unknown(let v): return v
        }
    }
}

/// An interaction's media (`supportedMediaTypes`, `allowedMediaTypes`).
public enum MediaType: ICWSEnumeration {
    case unset, call, chat, email, generic, callback, smsMessage, workItem, directMessage, socialConversation
    case unknown(UInt32)

    public static let names = ["none", "call", "chat", "email", "generic", "callback", "smsMessage", "workItem", "directMessage", "socialConversation"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .unset
        case 1: self = .call
        case 2: self = .chat
        case 3: self = .email
        case 4: self = .generic
        case 5: self = .callback
        case 6: self = .smsMessage
        case 7: self = .workItem
        case 8: self = .directMessage
        case 9: self = .socialConversation
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .unset: return 0
        case .call: return 1
        case .chat: return 2
        case .email: return 3
        case .generic: return 4
        case .callback: return 5
        case .smsMessage: return 6
        case .workItem: return 7
        case .directMessage: return 8
        case .socialConversation: return 9
        case .unknown(let v): return v
        }
    }
}

/// Whose alert an alerting interaction is (`alertType`).
public enum AlertType: ICWSEnumeration {
    case unset, user, station, workgroup, stationGroup, acdUser, acdStation
    case unknown(UInt32)

    public static let names = ["none", "user", "station", "workgroup", "stationGroup", "acdUser", "acdStation"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .unset
        case 1: self = .user
        case 2: self = .station
        case 3: self = .workgroup
        case 4: self = .stationGroup
        case 5: self = .acdUser
        case 6: self = .acdStation
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .unset: return 0
        case .user: return 1
        case .station: return 2
        case .workgroup: return 3
        case .stationGroup: return 4
        case .acdUser: return 5
        case .acdStation: return 6
        case .unknown(let v): return v
        }
    }
}

/// What an alerting detail says (`alertAction`).
public enum AlertAction: ICWSEnumeration {
    case unset, startAlerting, stopAlerting
    case unknown(UInt32)

    public static let names = ["none", "startAlerting", "stopAlerting"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .unset
        case 1: self = .startAlerting
        case 2: self = .stopAlerting
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .unset: return 0
        case .startAlerting: return 1
        case .stopAlerting: return 2
        case .unknown(let v): return v
        }
    }
}

/// The kind of a monitored queue (`queueType`).
public enum QueueType: ICWSEnumeration {
    case system, user, workgroup, station
    case unknown(UInt32)

    public static let names = ["system", "user", "workgroup", "station"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .system
        case 1: self = .user
        case 2: self = .workgroup
        case 3: self = .station
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .system: return 0
        case .user: return 1
        case .workgroup: return 2
        case .station: return 3
        case .unknown(let v): return v
        }
    }
}

/// A subscription's state (`subscriptionStateMessage.state`).
public enum SubscriptionState: ICWSEnumeration {
    case unset, normal, suspended, faulted
    case unknown(UInt32)

    public static let names = ["none", "normal", "suspended", "faulted"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .unset
        case 1: self = .normal
        case 2: self = .suspended
        case 3: self = .faulted
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .unset: return 0
        case .normal: return 1
        case .suspended: return 2
        case .faulted: return 3
        case .unknown(let v): return v
        }
    }
}

/// How a station outlives its session (`stationConnectionMode`).
public enum StationConnectionMode: ICWSEnumeration {
    case standard, independentOfSession, independentConnectionsLogoutWithSession
    case unknown(UInt32)

    public static let names = ["default", "independentofSession", "independentConnectionsLogoutWithSession"]

    public init(rawValue: UInt32) {
        switch rawValue {
        case 0: self = .standard
        case 1: self = .independentOfSession
        case 2: self = .independentConnectionsLogoutWithSession
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .standard: return 0
        case .independentOfSession: return 1
        case .independentConnectionsLogoutWithSession: return 2
        case .unknown(let v): return v
        }
    }
}

/// The session state as the bridge publishes it (`Session.State`): the
/// bridge's own, not an ICWS value; here so that `icws-bridgectl` names it
/// without linking the session code.
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

extension JSONValue {
    /// An ICWS enumeration value as the server sends it.
    public static func enumValue(_ value: some ICWSEnumeration) -> JSONValue { value.json }
}

/// `Interaction.State` (u) of the contract: the interaction's `Eic_State`
/// letter as a number. Shared by the daemon (which maps the letter), the
/// notifier and `icws-bridgectl` (which read the number).
public enum InteractionState: UInt32, Sendable, CaseIterable {
    case unknown = 0, offering, alerting, connected, held, messaging, parked, proceeding, suspended, system, disconnected, disconnectedRemotely

    /// From `Eic_State` ("O", "A", "C", …); anything else is `unknown`.
    public init(code: String) {
        switch code {
        case "O": self = .offering
        case "A": self = .alerting
        case "C": self = .connected
        case "H": self = .held
        case "M": self = .messaging
        case "P": self = .parked
        case "R": self = .proceeding
        case "X": self = .suspended
        case "S": self = .system
        case "I": self = .disconnected
        case "E": self = .disconnectedRemotely
        default: self = .unknown
        }
    }

    /// A number off the bus; one this build does not know is `unknown`.
    public init(bus value: UInt32) { self = InteractionState(rawValue: value) ?? .unknown }

    /// Rings here (before anyone answered): offering or alerting.
    public var isRinging: Bool { self == .offering || self == .alerting }

    public var name: String {
        switch self {
        case .unknown: return "-"
        case .offering: return "offering"
        case .alerting: return "alerting"
        case .connected: return "connected"
        case .held: return "held"
        case .messaging: return "messaging"
        case .parked: return "parked"
        case .proceeding: return "proceeding"
        case .suspended: return "suspended"
        case .system: return "system"
        case .disconnected: return "disconnected"
        case .disconnectedRemotely: return "disconnected (remote)"
        }
    }
}

/// `Interaction.Direction` (u) of the contract, from `Eic_CallDirection`.
public enum CallDirection: UInt32, Sendable, CaseIterable {
    case unknown = 0, inbound, outbound

    /// From `Eic_CallDirection` ("I", "O"); anything else is `unknown`.
    public init(code: String?) {
        switch code {
        case "I"?: self = .inbound
        case "O"?: self = .outbound
        default: self = .unknown
        }
    }

    public init(bus value: UInt32) { self = CallDirection(rawValue: value) ?? .unknown }

    public var name: String {
        switch self {
        case .unknown: return ""
        case .inbound: return "inbound"
        case .outbound: return "outbound"
        }
    }
}

/// A subscription's health in `Session.Subscriptions` (a{su}) of the contract.
public enum SubscriptionHealth: UInt32, Sendable, CaseIterable {
    /// Not made on this session (none wanted, not yet reached, or under way).
    case none = 0
    case normal
    /// The server reported it suspended.
    case suspended
    /// The server reported it faulted, or refused it; made again with the backoff.
    case faulted

    public init(bus value: UInt32) { self = SubscriptionHealth(rawValue: value) ?? .none }

    public var name: String {
        switch self {
        case .none: return "none"
        case .normal: return "normal"
        case .suspended: return "suspended"
        case .faulted: return "faulted"
        }
    }
}
