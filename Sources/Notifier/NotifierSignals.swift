import BridgeContract
import DBusKit

/// The names of the notification server (the Desktop Notifications Specification).
public enum NotificationsNames {
    public static let busName = "org.freedesktop.Notifications"
    public static let objectPath = "/org/freedesktop/Notifications"
    public static let interface = "org.freedesktop.Notifications"
}

/// The bus driver, which announces who owns a name.
enum BusDriver {
    static let name = "org.freedesktop.DBus"
    static let path = "/org/freedesktop/DBus"
    static let interface = "org.freedesktop.DBus"
}

/// One signal as the notifier reads it (a `SignalMessage` without its signature).
public struct BusSignal: Sendable, Equatable {
    public var sender: String
    public var path: String
    public var interface: String
    public var member: String
    public var arguments: [DBusValue]

    public init(sender: String, path: String, interface: String, member: String, arguments: [DBusValue]) {
        self.sender = sender
        self.path = path
        self.interface = interface
        self.member = member
        self.arguments = arguments
    }

    public init(_ m: SignalMessage) {
        self.init(sender: m.sender, path: m.path, interface: m.interface, member: m.member, arguments: m.arguments)
    }
}

/// Signals as the notifier reads them: the match rules it adds, and each
/// signal turned into a machine event. Anything of an unexpected shape (a
/// wrong type, a path outside the bridge's interaction objects) is nil, never a crash.
public enum NotifierSignals {
    /// Match rules on the bridge's bus: its object manager, its interaction
    /// objects' and its Status properties, and its name's owner. Narrow on
    /// purpose: `UsersChanged` and `Alerting` can be megabytes.
    public static let bridgeRules: [String] = [
        "type='signal',sender='\(BridgeNames.busName)',path='\(BridgeNames.objectPath)',interface='\(BridgeNames.objectManager)'",
        "type='signal',sender='\(BridgeNames.busName)',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path_namespace='\(BridgeNames.interactionPrefix.dropLast())'",
        "type='signal',sender='\(BridgeNames.busName)',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path='\(BridgeNames.objectPath)',arg0='\(BridgeNames.status)'",
        ownerRule(BridgeNames.busName),
    ]

    /// Match rules on the notification server's bus.
    public static let notificationRules: [String] = [
        "type='signal',sender='\(NotificationsNames.busName)',path='\(NotificationsNames.objectPath)',interface='\(NotificationsNames.interface)'",
        ownerRule(NotificationsNames.busName),
    ]

    static func ownerRule(_ name: String) -> String {
        "type='signal',sender='\(BusDriver.name)',path='\(BusDriver.path)',interface='\(BusDriver.interface)',member='NameOwnerChanged',arg0='\(name)'"
    }

    /// `NameOwnerChanged` for `name` from the bus driver: the new owner ("" when it left).
    public static func newOwner(of name: String, in s: BusSignal) -> String? {
        guard s.sender == BusDriver.name, s.interface == BusDriver.interface, s.member == "NameOwnerChanged", s.arguments.count == 3,
            case .string(let n) = s.arguments[0], n == name, case .string(let owner) = s.arguments[2]
        else { return nil }
        return owner
    }

    /// True for a path of an interaction object (`…/Bridge1/Interaction/<escaped id>`).
    public static func isInteractionPath(_ path: String) -> Bool { BridgeNames.isInteractionPath(path) }

    /// A signal of the bridge as a machine event.
    public static func bridgeEvent(_ s: BusSignal) -> NotifierMachine.Event? {
        let a = s.arguments
        switch (s.interface, s.member) {
        case (BridgeNames.objectManager, "InterfacesAdded"):
            guard s.path == BridgeNames.objectPath, a.count == 2, case .objectPath(let path) = a[0], isInteractionPath(path),
                let properties = a[1][BridgeNames.interaction]
            else { return nil }
            return .interactionAdded(path: path, properties: properties)
        case (BridgeNames.objectManager, "InterfacesRemoved"):
            guard s.path == BridgeNames.objectPath, a.count == 2, case .objectPath(let path) = a[0], isInteractionPath(path),
                let names = a[1].arrayElements, names.contains(.string(BridgeNames.interaction))
            else { return nil }
            return .interactionRemoved(path: path)
        case ("org.freedesktop.DBus.Properties", "PropertiesChanged"):
            guard a.count >= 2, case .string(let interface) = a[0], a[1].dictEntries != nil else { return nil }
            if interface == BridgeNames.interaction, isInteractionPath(s.path) {
                return .interactionChanged(path: s.path, properties: a[1])
            }
            if interface == BridgeNames.status, s.path == BridgeNames.objectPath,
                case .bool(let dnd)? = a[1][Contract.Status.isDoNotDisturb.name]
            {
                return .doNotDisturbChanged(dnd)
            }
            return nil
        default:
            return nil
        }
    }

    /// A signal of the notification server as a machine event.
    public static func notificationEvent(_ s: BusSignal) -> NotifierMachine.Event? {
        guard s.interface == NotificationsNames.interface, s.path == NotificationsNames.objectPath else { return nil }
        let a = s.arguments
        switch s.member {
        case "ActionInvoked":
            guard a.count == 2, case .uint32(let id) = a[0], case .string(let key) = a[1] else { return nil }
            return .actionInvoked(id: id, key: key)
        case "NotificationClosed":
            guard a.count == 2, case .uint32(let id) = a[0], case .uint32(let reason) = a[1] else { return nil }
            return .notificationClosed(id: id, reason: reason)
        default:
            return nil
        }
    }

    /// The interaction objects in a `GetManagedObjects` answer (`a{oa{sa{sv}}}`), in its order.
    public static func interactions(inManagedObjects reply: [DBusValue]) -> [NotifierMachine.ObjectProperties] {
        guard let first = reply.first else { return [] }
        return BridgeNames.interactionObjects(inManagedObjects: first).map { NotifierMachine.ObjectProperties(path: $0.path, properties: $0.properties) }
    }
}
