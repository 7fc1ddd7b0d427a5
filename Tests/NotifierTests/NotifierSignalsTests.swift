import BridgeContract
import DBusKit
import Testing

@testable import Notifier

/// Signals and replies as the notifier reads them: the right shapes become
/// events, anything else (wrong types, foreign paths) is ignored.
@Suite struct NotifierSignalsTests {
    static let path = BridgeNames.interactionPrefix + "1001"
    static let call = DBusValue.vardict([("State", .uint32(2)), ("Direction", .uint32(1))])

    static func signal(_ interface: String, _ member: String, path: String = BridgeNames.objectPath, sender: String = ":1.7", _ args: [DBusValue])
        -> BusSignal
    {
        BusSignal(sender: sender, path: path, interface: interface, member: member, arguments: args)
    }

    static func interfaces(_ props: DBusValue) -> DBusValue {
        .dict(key: "s", value: "a{sv}", [.init(.string(BridgeNames.interaction), props)])
    }

    @Test func objectManagerAndPropertiesSignals() {
        let om = BridgeNames.objectManager
        let added = NotifierSignals.bridgeEvent(Self.signal(om, "InterfacesAdded", [.objectPath(Self.path), Self.interfaces(Self.call)]))
        #expect(added == .interactionAdded(path: Self.path, properties: Self.call))
        let removed = NotifierSignals.bridgeEvent(Self.signal(om, "InterfacesRemoved", [.objectPath(Self.path), .strings([BridgeNames.interaction])]))
        #expect(removed == .interactionRemoved(path: Self.path))
        let changed = NotifierSignals.bridgeEvent(
            Self.signal("org.freedesktop.DBus.Properties", "PropertiesChanged", path: Self.path, [.string(BridgeNames.interaction), Self.call, .strings([])]))
        #expect(changed == .interactionChanged(path: Self.path, properties: Self.call))
        let dnd = NotifierSignals.bridgeEvent(
            Self.signal("org.freedesktop.DBus.Properties", "PropertiesChanged", [.string(BridgeNames.status), .vardict([("IsDoNotDisturb", .bool(true))]), .strings([])]))
        #expect(dnd == .doNotDisturbChanged(true))
    }

    @Test func oddShapesAreIgnored() {
        let om = BridgeNames.objectManager
        let props = "org.freedesktop.DBus.Properties"
        let odd: [BusSignal] = [
            // Outside the interaction objects, or the main object itself.
            Self.signal(om, "InterfacesAdded", [.objectPath(BridgeNames.objectPath + "/Other/1"), Self.interfaces(Self.call)]),
            Self.signal(om, "InterfacesAdded", [.objectPath(BridgeNames.interactionPrefix), Self.interfaces(Self.call)]),
            Self.signal(om, "InterfacesAdded", [.objectPath(BridgeNames.interactionPrefix + "a/b"), Self.interfaces(Self.call)]),
            // Wrong types, counts, interfaces.
            Self.signal(om, "InterfacesAdded", [.string(Self.path), Self.interfaces(Self.call)]),
            Self.signal(om, "InterfacesAdded", [.objectPath(Self.path)]),
            Self.signal(om, "InterfacesAdded", [.objectPath(Self.path), .dict(key: "s", value: "a{sv}", [.init(.string("other.Iface"), Self.call)])]),
            Self.signal(om, "InterfacesAdded", path: "/elsewhere", [.objectPath(Self.path), Self.interfaces(Self.call)]),
            Self.signal(om, "InterfacesRemoved", [.objectPath(Self.path), .strings(["org.freedesktop.DBus.Peer"])]),
            Self.signal(om, "InterfacesRemoved", [.objectPath(Self.path), .uint32(1)]),
            Self.signal(props, "PropertiesChanged", path: Self.path, [.string(BridgeNames.interaction), .uint32(2)]),
            Self.signal(props, "PropertiesChanged", path: Self.path, [.uint32(1), Self.call]),
            Self.signal(props, "PropertiesChanged", path: "/x", [.string(BridgeNames.interaction), Self.call]),
            Self.signal(props, "PropertiesChanged", [.string(BridgeNames.status), .vardict([("IsDoNotDisturb", .string("yes"))])]),
            Self.signal(props, "PropertiesChanged", [.string(BridgeNames.session), .vardict([("State", .uint32(2))])]),
            Self.signal(BridgeNames.interactions, "InteractionAlerting", [.vardicts([]), .bool(true)]),
        ]
        for s in odd { #expect(NotifierSignals.bridgeEvent(s) == nil, "\(s.member) \(s.arguments)") }
    }

    @Test func notificationServerSignals() {
        let i = NotificationsNames.interface
        let p = NotificationsNames.objectPath
        #expect(NotifierSignals.notificationEvent(Self.signal(i, "ActionInvoked", path: p, [.uint32(4), .string("answer")])) == .actionInvoked(id: 4, key: "answer"))
        #expect(NotifierSignals.notificationEvent(Self.signal(i, "NotificationClosed", path: p, [.uint32(4), .uint32(2)])) == .notificationClosed(id: 4, reason: 2))
        #expect(NotifierSignals.notificationEvent(Self.signal(i, "ActionInvoked", path: p, [.int32(4), .string("answer")])) == nil)
        #expect(NotifierSignals.notificationEvent(Self.signal(i, "ActionInvoked", path: "/other", [.uint32(4), .string("answer")])) == nil)
        #expect(NotifierSignals.notificationEvent(Self.signal(i, "NotificationClosed", path: p, [.uint32(4)])) == nil)
        #expect(NotifierSignals.notificationEvent(Self.signal(i, "ActivationToken", path: p, [.uint32(4), .string("t")])) == nil)
    }

    @Test func nameOwnerChangesOnlyFromTheBusDriver() {
        let args: [DBusValue] = [.string(BridgeNames.busName), .string(":1.4"), .string("")]
        let real = Self.signal("org.freedesktop.DBus", "NameOwnerChanged", path: "/org/freedesktop/DBus", sender: "org.freedesktop.DBus", args)
        #expect(NotifierSignals.newOwner(of: BridgeNames.busName, in: real) == "")
        #expect(NotifierSignals.newOwner(of: NotificationsNames.busName, in: real) == nil)
        let forged = Self.signal("org.freedesktop.DBus", "NameOwnerChanged", path: "/org/freedesktop/DBus", sender: ":1.66", args)
        #expect(NotifierSignals.newOwner(of: BridgeNames.busName, in: forged) == nil)
    }

    @Test func managedObjectsKeepOnlyInteractionObjects() {
        let reply: [DBusValue] = [
            .dict(key: "o", value: "a{sa{sv}}", [
                .init(.objectPath(Self.path), Self.interfaces(Self.call)),
                .init(.objectPath(BridgeNames.objectPath + "/Other"), Self.interfaces(Self.call)),
                .init(.objectPath(BridgeNames.interactionPrefix + "2"), .dict(key: "s", value: "a{sv}", [])),
            ])
        ]
        #expect(NotifierSignals.interactions(inManagedObjects: reply) == [.init(path: Self.path, properties: Self.call)])
        #expect(NotifierSignals.interactions(inManagedObjects: []).isEmpty)
        #expect(NotifierSignals.interactions(inManagedObjects: [.uint32(3)]).isEmpty)
    }

    @Test func matchRulesNarrowToWhatTheNotifierReads() {
        #expect(NotifierSignals.bridgeRules.allSatisfy { $0.contains("sender='") })
        #expect(NotifierSignals.bridgeRules.contains { $0.contains("path_namespace='/io/github/icwsbridge/Bridge1/Interaction'") })
        #expect(NotifierSignals.bridgeRules.contains { $0.contains("arg0='io.github.icwsbridge.Bridge1.Status'") })
        #expect(!NotifierSignals.bridgeRules.contains { $0.contains("path_namespace='/io/github/icwsbridge/Bridge1'") }, "not UsersChanged")
    }
}
