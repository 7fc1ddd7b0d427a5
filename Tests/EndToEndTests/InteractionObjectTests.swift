import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSSimulator
import Testing
import TestSupport

/// Contract v1.1's interaction objects through the real daemon on a real
/// dbus-daemon (with the shipped policy), driven with `busctl` as a
/// softphone author would, and icws-sim playing the agent's user queue.
@Suite(.serialized, .timeLimit(.minutes(3))) struct InteractionObjectTests {
    func startRig(_ extra: String = "") async throws -> (DaemonRig, SignalRecorder) {
        let rig = try await DaemonRig.start(config: extra)
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        let recorder = try await SignalRecorder(address: rig.bus.address)
        // The queue subscription is made (its snapshot comes next).
        try await eventually("queue subscribed") {
            rig.sim.requests.contains { $0.method == "PUT" && $0.path.hasSuffix("/messaging/subscriptions/queues/icws-bridge-my-interactions") }
        }
        return (rig, recorder)
    }

    func call(_ rig: DaemonRig, _ path: String, _ member: String, _ args: [String] = [], asUser user: String? = nil) async throws -> CommandResult {
        try await rig.bus.busctl(["call", BridgeNames.busName, path, BridgeNames.interaction, member] + args, asUser: user)
    }

    /// gdbus prints the D-Bus error name (busctl prints only its message).
    func gdbus(_ rig: DaemonRig, _ path: String, _ method: String, _ args: [String] = []) async throws -> CommandResult {
        try await runCommand(["gdbus", "call", "--address", rig.bus.address, "--dest", BridgeNames.busName, "--object-path", path, "--method", method] + args)
    }

    func get(_ rig: DaemonRig, _ path: String, _ name: String) async throws -> String {
        try await rig.bus.busctl(["get-property", BridgeNames.busName, path, BridgeNames.interaction, name]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A softphone's view: ring, answer, hold, mute, digits, unhold, hang up,
    /// every step with busctl alone, and the wire JSON of each action.
    @Test func aCallFromRingingToHangUpWithBusctlAlone() async throws {
        let (rig, recorder) = try await startRig()
        let id = rig.sim.startCall(name: "ACME Corp", address: "+13175550100")
        let path = try #require(BridgeNames.interactionPath(id))
        try await eventually("InterfacesAdded") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == path } }
        let added = try #require(recorder.members("InterfacesAdded").first { $0.arguments.first?.stringValue == path })
        #expect(added.arguments[1][BridgeNames.interaction]?["State"] == .uint32(2), "alerting")
        #expect(added.arguments[1][BridgeNames.interaction]?["RemoteName"] == .string("ACME Corp"))
        #expect(try await get(rig, path, "State") == "u 2")
        #expect(try await get(rig, path, "Direction") == "u 1")
        let managed = try await rig.bus.busctl(["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.objectManager, "GetManagedObjects"])
        #expect(managed.status == 0 && managed.stdout.contains(path) && managed.stdout.contains("ACME Corp"), "\(managed.stdout) \(managed.stderr)")
        // The main object's introspection lists the child node; the child introspects.
        let intro = try await rig.bus.busctl(["introspect", "--xml-interface", BridgeNames.busName, BridgeNames.interactionPrefix.dropLast() + ""])
        #expect(intro.stdout.contains("<node name=\"\(id)\"/>"), "\(intro.stdout)")
        let childIntro = try await rig.bus.busctl(["introspect", "--xml-interface", BridgeNames.busName, path])
        #expect(childIntro.stdout.contains(BridgeNames.interaction) && childIntro.stdout.contains("SendToVoicemail"))

        #expect(try await call(rig, path, "Pickup").status == 0)
        #expect(rig.sim.interaction(id)?["Eic_State"] == "C", "the server was told before the reply")
        try await eventually("connected") { try await get(rig, path, "State") == "u 3" }
        try await eventually("PropertiesChanged State") {
            recorder.members("PropertiesChanged").contains { $0.path == path && $0.arguments[1]["State"] == .uint32(3) }
        }
        #expect(try await call(rig, path, "Hold", ["b", "true"]).status == 0)
        try await eventually("held") { try await get(rig, path, "State") == "u 4" }
        #expect(try await call(rig, path, "Mute", ["b", "true"]).status == 0)
        try await eventually("muted") { try await get(rig, path, "Muted") == "b true" }
        #expect(try await call(rig, path, "Hold", ["b", "false"]).status == 0)
        #expect(try await call(rig, path, "SendDigits", ["s", "12#a"]).status == 0)
        #expect(try await call(rig, path, "Disconnect").status == 0)
        try await eventually("InterfacesRemoved") { recorder.members("InterfacesRemoved").contains { $0.arguments.first?.stringValue == path } }
        let gone = try await call(rig, path, "Pickup")
        #expect(gone.status != 0 && gone.stderr.contains("UnknownObject") || gone.stderr.contains("no object"), "\(gone.stderr)")

        // What reached the server, exactly.
        let actions = rig.sim.actionRequests.filter { $0.id == id }
        #expect(actions.map(\.action) == ["pickup", "hold", "mute", "hold", "send-digits", "disconnect"], "\(actions.map(\.action))")
        #expect(actions[1].body == .object([("on", .bool(true))]))
        #expect(actions[2].body == .object([("on", .bool(true))]))
        #expect(actions[3].body == .object([("on", .bool(false))]))
        #expect(actions[4].body == .object([("dtmfDigits", .string("12#A"))]))
        recorder.close()
        await rig.stop()
    }

    /// Each attribute the properties come from emits its property's
    /// PropertiesChanged (with the value) when a delta changes it.
    @Test func everyAttributeChangeEmitsItsProperty() async throws {
        let (rig, recorder) = try await startRig()
        let id = rig.sim.startCall()
        let path = try #require(BridgeNames.interactionPath(id))
        try await eventually("object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == path } }
        rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": "icws-bridge-my-interactions",
            "interactionsChanged": [[
                "interactionId": .string(id),
                "attributes": [
                    "Eic_State": "H", "Eic_ObjectType": "Chat", "Eic_CallDirection": "O", "Eic_RemoteName": "Changed Name",
                    "Eic_RemoteAddress": "+19999", "Eic_Muted": "1", "Eic_Capabilities": "7", "Eic_ConferenceId": "conf-1",
                    "Eic_InitiationTime": "20250101T000000Z", "Extra": "x",
                ],
            ]],
        ])
        let expected: [String: DBusValue] = [
            "State": .uint32(4), "StateCode": .string("H"), "Type": .string("Chat"), "Direction": .uint32(2), "RemoteName": .string("Changed Name"),
            "RemoteAddress": .string("+19999"), "Muted": .bool(true), "Capabilities": .uint32(7), "ConferenceId": .string("conf-1"),
            "InitiationTime": .string("20250101T000000Z"),
        ]
        try await eventually("PropertiesChanged") {
            recorder.members("PropertiesChanged").contains { $0.path == path && $0.arguments[1]["RemoteName"] == .string("Changed Name") }
        }
        let change = try #require(recorder.members("PropertiesChanged").last { $0.path == path && $0.arguments[1]["RemoteName"] != nil })
        #expect(change.arguments[0] == .string(BridgeNames.interaction))
        for (name, value) in expected { #expect(change.arguments[1][name] == value, "\(name): \(String(describing: change.arguments[1][name]))") }
        #expect(change.arguments[1]["Attributes"]?["Extra"] == .string("x"))
        #expect(change.arguments[1]["Id"] == nil, "only what changed")
        recorder.close()
        await rig.stop()
    }

    /// Arguments are checked before anything reaches the server; ICWS errors
    /// map as the contract says (404 → NoSuchInteraction).
    @Test func argumentsAreCheckedAndErrorsMapped() async throws {
        let (rig, recorder) = try await startRig()
        let id = rig.sim.startCall()
        let path = try #require(BridgeNames.interactionPath(id))
        try await eventually("object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == path } }
        // (The status subscriptions may still be being made: count interaction requests only.)
        let actions: @Sendable () -> Int = { rig.sim.requests.filter { $0.path.contains("/interactions") }.count }
        let before = actions()
        let i = BridgeNames.interaction
        for (method, args) in [("\(i).SendDigits", ["''"]), ("\(i).SendDigits", ["'12x'"]), ("\(i).SendDigits", ["'\(String(repeating: "1", count: 65))'"]),
                               ("\(i).BlindTransfer", ["''"]), ("\(i).BlindTransfer", ["'\(String(repeating: "x", count: 257))'"])] {
            let r = try await gdbus(rig, path, method, args)
            #expect(r.status != 0 && r.stderr.contains("org.freedesktop.DBus.Error.InvalidArgs"), "\(method) \(args): \(r.stderr)")
        }
        // A wrong type (gdbus would refuse it itself: busctl sends it).
        let wrongType = try await call(rig, path, "Hold", ["s", "yes"])
        #expect(wrongType.status != 0 && wrongType.stderr.contains("takes (b)"), "\(wrongType.stderr)")
        #expect(actions() == before, "nothing reached the server")
        // An interaction the server does not know (a queue that says more than the server).
        rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": "icws-bridge-my-interactions",
            "interactionsAdded": [["interactionId": "ghost-1", "attributes": ["Eic_State": "A"]]],
        ])
        let ghost = try #require(BridgeNames.interactionPath("ghost-1"))
        try await eventually("ghost object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == ghost } }
        let r404 = try await gdbus(rig, ghost, "\(i).Pickup")
        #expect(r404.status != 0 && r404.stderr.contains("io.github.icwsbridge.Bridge1.Error.NoSuchInteraction"), "\(r404.stderr)")
        #expect(rig.sim.requests.contains { $0.path.hasSuffix("/interactions/ghost-1/pickup") }, "the id went percent-encoded into the URL")
        // Dial: the wire JSON, the reply path, and the object within 2 s.
        let dial = try await rig.bus.busctl([
            "call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.interactions, "Dial", "sa{sv}", "+13175550199", "2",
            "workgroup", "s", "Support", "attributes", "v", "a{ss}", "1", "CRM_CaseId", "CASE-4711",
        ])
        #expect(dial.status == 0, "\(dial.stderr)")
        let created = try #require(rig.sim.requests.last { $0.method == "POST" && $0.path.hasSuffix("/interactions") })
        #expect(created.body?["__type"]?.stringValue == "urn:inin.com:interactions:createCallParameters")
        #expect(created.body?["target"]?.stringValue == "+13175550199" && created.body?["workgroup"]?.stringValue == "Support")
        #expect(created.body?["additionalAttributes"]?["CRM_CaseId"]?.stringValue == "CASE-4711")
        let dialed = dial.stdout.split(separator: "\"").dropFirst().first.map(String.init) ?? ""
        #expect(dialed.hasPrefix(BridgeNames.interactionPrefix), "\(dial.stdout)")
        try await eventually("dialed object", timeout: .seconds(2)) { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == dialed } }
        try await eventually("outbound call connected") { try await get(rig, dialed, "State") == "u 3" }
        #expect(try await get(rig, dialed, "Direction") == "u 2")
        for bad in [["''", "{}"], ["'123'", "{'colour': <'red'>}"], ["'123'", "{'workgroup': <uint32 7>}"]] {
            let r = try await gdbus(rig, BridgeNames.objectPath, "\(BridgeNames.interactions).Dial", bad)
            #expect(r.status != 0 && r.stderr.contains("org.freedesktop.DBus.Error.InvalidArgs"), "\(bad): \(r.stderr)")
        }
        let colour = try await rig.bus.busctl(["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.interactions, "Dial", "sa{sv}", "123", "1", "colour", "s", "red"])
        #expect(colour.stderr.contains("colour"), "the unknown option is named: \(colour.stderr)")
        recorder.close()
        await rig.stop()
    }

    /// After a reconnect the snapshot rebuilds the set: a surviving call keeps
    /// its path (no InterfacesRemoved/Added), a gone one is removed, and one
    /// that rang during the outage shows up.
    @Test func theSnapshotAfterAReconnectKeepsPathsAndRemovesTheGone() async throws {
        let (rig, recorder) = try await startRig()
        let survivor = rig.sim.startCall(name: "Survivor")
        let doomed = rig.sim.startCall(name: "Doomed")
        let survivorPath = try #require(BridgeNames.interactionPath(survivor))
        let doomedPath = try #require(BridgeNames.interactionPath(doomed))
        try await eventually("both objects") {
            Set(recorder.members("InterfacesAdded").compactMap { $0.arguments.first?.stringValue }).isSuperset(of: [survivorPath, doomedPath])
        }
        // The server restarts: the sessions are gone; meanwhile one call ends and another rings.
        rig.sim.inject(.restart(downFor: .milliseconds(800)))
        rig.sim.remoteHangup(doomed)
        let newcomer = rig.sim.startCall(name: "Newcomer")
        let newcomerPath = try #require(BridgeNames.interactionPath(newcomer))
        try await eventually("newcomer", timeout: .seconds(20)) {
            recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == newcomerPath }
        }
        try await eventually("doomed removed") { recorder.members("InterfacesRemoved").contains { $0.arguments.first?.stringValue == doomedPath } }
        #expect(!recorder.members("InterfacesRemoved").contains { $0.arguments.first?.stringValue == survivorPath })
        #expect(recorder.members("InterfacesAdded").filter { $0.arguments.first?.stringValue == survivorPath }.count == 1)
        #expect(try await get(rig, survivorPath, "RemoteName") == "s \"Survivor\"")
        recorder.close()
        await rig.stop()
    }

    /// Hostile queue messages: deep and huge attribute values, ids no path can
    /// hold unescaped, odd values, a faulted subscription; the daemon stays on
    /// the bus and its objects stay readable.
    @Test func hostileQueueMessagesDoNotHurt() async throws {
        let (rig, recorder) = try await startRig()
        var deep: JSONValue = "x"
        for _ in 0..<40 { deep = .object([("d", deep)]) }
        let huge = String(repeating: "h", count: 9 << 20)
        rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": "icws-bridge-my-interactions",
            "interactionsAdded": [
                ["interactionId": "../../etc/passwd", "attributes": ["Eic_State": "A", "Deep": deep]],
                ["interactionId": "💥 id with spaces/and\u{1}control", "attributes": ["Eic_State": "C", "Huge": .string(huge)]],
                ["interactionId": "", "attributes": ["Eic_State": "A"]],
            ],
        ])
        let odd = try #require(BridgeNames.interactionPath("../../etc/passwd"))
        let spaced = try #require(BridgeNames.interactionPath("💥 id with spaces/and\u{1}control"))
        try await eventually("odd objects") {
            Set(recorder.members("InterfacesAdded").compactMap { $0.arguments.first?.stringValue }).isSuperset(of: [odd, spaced])
        }
        #expect(odd == BridgeNames.interactionPrefix + "_2e_2e_2f_2e_2e_2fetc_2fpasswd")
        #expect(try await get(rig, odd, "State") == "u 2")
        let attrs = try await rig.bus.busctl(["get-property", BridgeNames.busName, odd, BridgeNames.interaction, "Attributes"])
        #expect(attrs.status == 0 && attrs.stdout.contains("{\\\"d\\\""), "a deep value is its JSON text: \(attrs.stdout.prefix(200))")
        #expect(try await get(rig, spaced, "State") == "u 3")
        rig.sim.inject(.queueOddValues)
        rig.sim.inject(.queueFaulted)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await rig.property(BridgeNames.session, "State") == "u 2", "still connected")
        let managed = try await rig.bus.busctl(["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.objectManager, "GetManagedObjects"])
        #expect(managed.status == 0, "\(managed.stderr)")
        recorder.close()
        await rig.stop()
    }

    /// Everyone may list and read; only root and icws-agents may act.
    @Test func thePolicyRefusesCallControlToOutsiders() async throws {
        try #require(isRoot, "the policy test needs root to create its users")
        try await ensurePolicyUsers()
        let (rig, recorder) = try await startRig()
        let id = rig.sim.startCall()
        let path = try #require(BridgeNames.interactionPath(id))
        try await eventually("object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == path } }
        let refused = try await call(rig, path, "Pickup", asUser: "icws-test-outsider")
        #expect(refused.status != 0 && (refused.stderr.contains("AccessDenied") || refused.stderr.lowercased().contains("access denied")), "\(refused.stderr)")
        let dial = try await rig.bus.busctl(
            ["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.interactions, "Dial", "sa{sv}", "123", "0"], asUser: "icws-test-outsider")
        #expect(dial.status != 0)
        #expect(rig.sim.interaction(id)?["Eic_State"] == "A")
        let list = try await rig.bus.busctl(
            ["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.objectManager, "GetManagedObjects"], asUser: "icws-test-outsider")
        #expect(list.status == 0 && list.stdout.contains(path), "\(list.stderr)")
        let read = try await rig.bus.busctl(["get-property", BridgeNames.busName, path, BridgeNames.interaction, "State"], asUser: "icws-test-outsider")
        #expect(read.status == 0 && read.stdout.contains("u 2"), "\(read.stderr)")
        let agent = try await call(rig, path, "Pickup", asUser: "icws-test-agent")
        #expect(agent.status == 0, "\(agent.stderr)")
        // icws-bridgectl as the softphone author's shortcut.
        let calls = try await rig.ctl(["calls"])
        #expect(calls.status == 0 && calls.stdout.contains(id) && calls.stdout.contains("connected"), "\(calls.stdout) \(calls.stderr)")
        let hold = try await rig.ctl(["hold", id])
        #expect(hold.status == 0 && rig.sim.interaction(id)?["Eic_State"] == "H", "\(hold.stderr)")
        let json = try await rig.ctl(["calls", "--json"])
        #expect(json.stdout.hasPrefix("[") && json.stdout.contains("\"State\":4"), "\(json.stdout)")
        recorder.close()
        await rig.stop()
    }
}
