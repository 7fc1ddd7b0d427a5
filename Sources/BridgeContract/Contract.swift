import DBusKit

/// A method of the contract: where it lives and what it takes and gives.
public struct MethodSpec: Sendable, Hashable {
    public let interface: String
    public let name: String
    public let inSignature: String
    public let outSignature: String
}

/// A signal of the contract.
public struct SignalSpec: Sendable, Hashable {
    public let interface: String
    public let name: String
    public let signature: String
}

/// A property of the contract (all read-only).
public struct PropertySpec: Sendable, Hashable {
    public let interface: String
    public let name: String
    public let type: String
}

/// The D-Bus contract as one table per interface: every member with its
/// signature, named in code by these constants rather than by strings. The
/// bridge binds its handlers to these, and `mismatches(against:)` holds the
/// table against the shipped XML (a test, and a check at start-up), so the
/// declaration, the XML and the code that serves it cannot drift apart.
public enum Contract {
    public enum Session {
        public static let interface = BridgeNames.session
        public static let reconnect = MethodSpec(interface: interface, name: "Reconnect", inSignature: "", outSignature: "")
        public static let disconnect = MethodSpec(interface: interface, name: "Disconnect", inSignature: "", outSignature: "")
        public static let state = PropertySpec(interface: interface, name: "State", type: "u")
        public static let server = PropertySpec(interface: interface, name: "Server", type: "s")
        public static let userId = PropertySpec(interface: interface, name: "UserId", type: "s")
        public static let userDisplayName = PropertySpec(interface: interface, name: "UserDisplayName", type: "s")
        public static let messagingMode = PropertySpec(interface: interface, name: "MessagingMode", type: "s")
        public static let lastError = PropertySpec(interface: interface, name: "LastError", type: "s")
        public static let reconnectCount = PropertySpec(interface: interface, name: "ReconnectCount", type: "u")
        public static let features = PropertySpec(interface: interface, name: "Features", type: "a{su}")
        public static let subscriptions = PropertySpec(interface: interface, name: "Subscriptions", type: "a{su}")
        static let methods = [reconnect, disconnect]
        static let properties = [state, server, userId, userDisplayName, messagingMode, lastError, reconnectCount, features, subscriptions]
    }

    public enum Station {
        public static let interface = BridgeNames.station
        public static let connect = MethodSpec(interface: interface, name: "Connect", inSignature: "a{sv}", outSignature: "")
        public static let disconnect = MethodSpec(interface: interface, name: "Disconnect", inSignature: "", outSignature: "")
        public static let setReady = MethodSpec(interface: interface, name: "SetReady", inSignature: "b", outSignature: "")
        public static let getSipCredentials = MethodSpec(interface: interface, name: "GetSipCredentials", inSignature: "", outSignature: "sss")
        public static let stateChanged = SignalSpec(interface: interface, name: "StationConnectionStateChanged", signature: "a{sv}a{sv}b")
        public static let connected = PropertySpec(interface: interface, name: "Connected", type: "b")
        public static let ready = PropertySpec(interface: interface, name: "Ready", type: "b")
        public static let info = PropertySpec(interface: interface, name: "Info", type: "a{sv}")
        public static let settings = PropertySpec(interface: interface, name: "Settings", type: "a{sv}")
        static let methods = [connect, disconnect, setReady, getSipCredentials]
        static let signals = [stateChanged]
        static let properties = [connected, ready, info, settings]
    }

    public enum Interactions {
        public static let interface = BridgeNames.interactions
        public static let alertingSignal = SignalSpec(interface: interface, name: "InteractionAlerting", signature: "aa{sv}b")
        public static let alerting = PropertySpec(interface: interface, name: "Alerting", type: "aa{sv}")
        public static let dial = MethodSpec(interface: interface, name: "Dial", inSignature: "sa{sv}", outSignature: "o")
        static let methods = [dial]
        static let signals = [alertingSignal]
        static let properties = [alerting]
    }

    /// One object per interaction on the agent's own queue (contract v1.1).
    public enum Interaction {
        public static let interface = BridgeNames.interaction
        public static let id = PropertySpec(interface: interface, name: "Id", type: "s")
        public static let type = PropertySpec(interface: interface, name: "Type", type: "s")
        public static let state = PropertySpec(interface: interface, name: "State", type: "u")
        public static let stateCode = PropertySpec(interface: interface, name: "StateCode", type: "s")
        public static let direction = PropertySpec(interface: interface, name: "Direction", type: "u")
        public static let remoteName = PropertySpec(interface: interface, name: "RemoteName", type: "s")
        public static let remoteAddress = PropertySpec(interface: interface, name: "RemoteAddress", type: "s")
        public static let muted = PropertySpec(interface: interface, name: "Muted", type: "b")
        public static let capabilities = PropertySpec(interface: interface, name: "Capabilities", type: "u")
        public static let conferenceId = PropertySpec(interface: interface, name: "ConferenceId", type: "s")
        public static let initiationTime = PropertySpec(interface: interface, name: "InitiationTime", type: "s")
        public static let attributes = PropertySpec(interface: interface, name: "Attributes", type: "a{ss}")
        public static let pickup = MethodSpec(interface: interface, name: "Pickup", inSignature: "", outSignature: "")
        public static let disconnect = MethodSpec(interface: interface, name: "Disconnect", inSignature: "", outSignature: "")
        public static let hold = MethodSpec(interface: interface, name: "Hold", inSignature: "b", outSignature: "")
        public static let mute = MethodSpec(interface: interface, name: "Mute", inSignature: "b", outSignature: "")
        public static let sendDigits = MethodSpec(interface: interface, name: "SendDigits", inSignature: "s", outSignature: "")
        public static let blindTransfer = MethodSpec(interface: interface, name: "BlindTransfer", inSignature: "s", outSignature: "")
        public static let sendToVoicemail = MethodSpec(interface: interface, name: "SendToVoicemail", inSignature: "", outSignature: "")
        static let methods = [pickup, disconnect, hold, mute, sendDigits, blindTransfer, sendToVoicemail]
        static let properties = [
            id, type, state, stateCode, direction, remoteName, remoteAddress, muted, capabilities, conferenceId, initiationTime, attributes,
        ]
    }

    /// The agent's user status (contract v1.1), on the main object.
    public enum Status {
        public static let interface = BridgeNames.status
        public static let statusId = PropertySpec(interface: interface, name: "StatusId", type: "s")
        public static let statusText = PropertySpec(interface: interface, name: "StatusText", type: "s")
        public static let notes = PropertySpec(interface: interface, name: "Notes", type: "s")
        public static let forwardNumber = PropertySpec(interface: interface, name: "ForwardNumber", type: "s")
        public static let changed = PropertySpec(interface: interface, name: "Changed", type: "x")
        public static let loggedIn = PropertySpec(interface: interface, name: "LoggedIn", type: "b")
        public static let onPhone = PropertySpec(interface: interface, name: "OnPhone", type: "b")
        public static let isAcd = PropertySpec(interface: interface, name: "IsAcd", type: "b")
        public static let isDoNotDisturb = PropertySpec(interface: interface, name: "IsDoNotDisturb", type: "b")
        public static let isAfterCallWork = PropertySpec(interface: interface, name: "IsAfterCallWork", type: "b")
        public static let selectable = PropertySpec(interface: interface, name: "Selectable", type: "aa{sv}")
        public static let setStatus = MethodSpec(interface: interface, name: "SetStatus", inSignature: "sa{sv}", outSignature: "")
        static let methods = [setStatus]
        static let properties = [statusId, statusText, notes, forwardNumber, changed, loggedIn, onPhone, isAcd, isDoNotDisturb, isAfterCallWork, selectable]
    }

    public enum ObjectManager {
        public static let interface = BridgeNames.objectManager
        public static let getManagedObjects = MethodSpec(interface: interface, name: "GetManagedObjects", inSignature: "", outSignature: "a{oa{sa{sv}}}")
        public static let interfacesAdded = SignalSpec(interface: interface, name: "InterfacesAdded", signature: "oa{sa{sv}}")
        public static let interfacesRemoved = SignalSpec(interface: interface, name: "InterfacesRemoved", signature: "oas")
        static let methods = [getManagedObjects]
        static let signals = [interfacesAdded, interfacesRemoved]
    }

    public enum Users {
        public static let interface = BridgeNames.users
        public static let getUsers = MethodSpec(interface: interface, name: "GetUsers", inSignature: "", outSignature: "aa{sv}")
        public static let changed = SignalSpec(interface: interface, name: "UsersChanged", signature: "aa{sv}aa{sv}asb")
        public static let count = PropertySpec(interface: interface, name: "Count", type: "u")
        static let methods = [getUsers]
        static let signals = [changed]
        static let properties = [count]
    }

    public static let methods: [MethodSpec] =
        Session.methods + Station.methods + Interactions.methods + Users.methods + Interaction.methods + ObjectManager.methods + Status.methods
    public static let signals: [SignalSpec] = Station.signals + Interactions.signals + Users.signals + ObjectManager.signals
    public static let properties: [PropertySpec] =
        Session.properties + Station.properties + Interactions.properties + Users.properties + Interaction.properties + Status.properties

    /// One member as both sides describe it, for the comparison.
    struct Member: Hashable {
        var kind: String
        var interface: String
        var name: String
        var signature: String
        var key: String { "\(kind) \(interface).\(name)" }
    }

    static var tableMembers: [Member] {
        methods.map { Member(kind: "method", interface: $0.interface, name: $0.name, signature: "(\($0.inSignature))→(\($0.outSignature))") }
            + signals.map { Member(kind: "signal", interface: $0.interface, name: $0.name, signature: "(\($0.signature))") }
            + properties.map { Member(kind: "property", interface: $0.interface, name: $0.name, signature: $0.type) }
    }

    static func xmlMembers(_ interfaces: [InterfaceDescription]) -> [Member] {
        interfaces.flatMap { i in
            i.methods.map { Member(kind: "method", interface: i.name, name: $0.name, signature: "(\($0.inSignature))→(\($0.outSignature))") }
                + i.signals.map { Member(kind: "signal", interface: i.name, name: $0.name, signature: "(\($0.signature))") }
                + i.properties.map { Member(kind: "property", interface: i.name, name: $0.name, signature: $0.type) }
        }
    }

    /// Every difference between this table and `interfaces` (the XML), one
    /// line each; empty when they agree member for member.
    public static func mismatches(against interfaces: [InterfaceDescription]) -> [String] {
        let table = Dictionary(tableMembers.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let xml = Dictionary(xmlMembers(interfaces).map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var problems: [String] = []
        for name in Set(tableMembers.map(\.interface)) where !interfaces.contains(where: { $0.name == name }) {
            problems.append("interface \(name) is not in the XML")
        }
        for (key, x) in xml.sorted(by: { $0.key < $1.key }) {
            guard let t = table[key] else {
                problems.append("\(key) is in the XML, not in the table")
                continue
            }
            if t.signature != x.signature { problems.append("\(key) is \(x.signature) in the XML, \(t.signature) in the table") }
        }
        for key in table.keys.sorted() where xml[key] == nil { problems.append("\(key) is not in the XML") }
        return problems
    }
}

extension BusObject {
    /// Binds the handler of a method of the contract.
    public func onMethod(_ spec: MethodSpec, _ handler: @escaping Handler) { onMethod(spec.interface, spec.name, handler) }

    /// Emits a signal of the contract.
    public func emit(_ spec: SignalSpec, _ arguments: [DBusValue]) throws(BusError) { try emit(spec.interface, spec.name, arguments) }

    /// Sets properties of the contract (one `PropertiesChanged` per interface).
    public func setProperties(_ values: [(PropertySpec, DBusValue)]) throws(BusError) {
        var byInterface: [(String, [(String, DBusValue)])] = []
        for (spec, value) in values {
            if let i = byInterface.firstIndex(where: { $0.0 == spec.interface }) {
                byInterface[i].1.append((spec.name, value))
            } else {
                byInterface.append((spec.interface, [(spec.name, value)]))
            }
        }
        for (interface, pairs) in byInterface { try setProperties(interface, pairs) }
    }

    public func setProperty(_ spec: PropertySpec, _ value: DBusValue) throws(BusError) { try setProperty(spec.interface, spec.name, value) }
}
