import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSSimulator
import Logging
import Synchronization
import Testing
import TestSupport

/// The bridge in-process on a private dbus-daemon (with the shipped policy),
/// against icws-sim; checked with busctl, gdbus and a libdbus client.
struct BridgeRig {
    let harness: SupervisorHarness
    let bus: PrivateBus
    let server: BusConnection
    let bridge: BridgeService
    let client: BusConnection
    let signals: AsyncStream<SignalMessage>
    var sim: ICWSSimulator { harness.sim }

    static func start(_ configureSim: (inout SimulatorConfiguration) -> Void = { _ in }) async throws -> BridgeRig {
        let sim = try await startSimulator(configureSim)
        let bus = try PrivateBus()
        let server = try await BusConnection.connect(.address(bus.address), logger: Logger(label: "bridge.bus"))
        let harness = try SupervisorHarness.start(sim: sim, observeEvents: false)
        let bridge = try BridgeService(supervisor: harness.supervisor, connection: server, logger: harness.logs.logger("bridge"))
        try await bridge.publish()
        let client = try await BusConnection.connect(.address(bus.address), logger: Logger(label: "client"))
        try await client.addMatch("type='signal',sender='\(BridgeNames.busName)'")
        let signals = client.signals()
        harness.relay.connect(bridge)
        return BridgeRig(harness: harness, bus: bus, server: server, bridge: bridge, client: client, signals: signals)
    }

    func stop() async {
        await harness.stop()
        client.close()
        server.close()
        bus.stop()
    }

    func busctl(_ args: [String], asUser user: String? = nil) async throws -> CommandResult { try await bus.busctl(args, asUser: user) }

    func call(_ interface: String, _ member: String, _ args: [String] = [], asUser user: String? = nil) async throws -> CommandResult {
        try await busctl(["call", "--", BridgeNames.busName, BridgeNames.objectPath, interface, member] + args, asUser: user)
    }

    func property(_ interface: String, _ name: String) async throws -> DBusValue {
        let r = try await client.call(
            destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: "org.freedesktop.DBus.Properties",
            member: "Get", arguments: [.string(interface), .string(name)])
        return r[0].unwrapped
    }
}

/// Collects signals in the background so tests can wait for them.
final class SignalLog: Sendable {
    private let items = Mutex<[SignalMessage]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ stream: AsyncStream<SignalMessage>) {
        let t = Task { [weak self] in
            for await s in stream { self?.items.withLock { $0.append(s) } }
        }
        task.withLock { $0 = t }
    }

    var all: [SignalMessage] { items.withLock { $0 } }
    func members(_ member: String) -> [SignalMessage] { all.filter { $0.member == member } }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct BridgeBusTests {
    @Test func introspectionMatchesTheShippedXML() async throws {
        let rig = try await BridgeRig.start()
        let xml = try await rig.busctl(["introspect", "--xml-interface", BridgeNames.busName, BridgeNames.objectPath])
        #expect(xml.status == 0, "\(xml.stderr)")
        let served = try InterfaceDescription.parse(xml: xml.stdout)
        for expected in try BridgeNames.interfaces() {
            let got = try #require(served.first { $0.name == expected.name })
            #expect(got.methods == expected.methods && got.signals == expected.signals && got.properties == expected.properties)
        }
        let gdbus = try await runCommand(["gdbus", "introspect", "--address", rig.bus.address, "--dest", BridgeNames.busName, "--object-path", BridgeNames.objectPath])
        #expect(gdbus.stdout.contains("GetSipCredentials(out s sip_user,"), "\(gdbus.stderr)")
        await rig.stop()
    }

    @Test func signalsAndPropertiesFollowTheSession() async throws {
        let rig = try await BridgeRig.start()
        let log = SignalLog(rig.signals)
        try await rig.harness.waitForState(.connected)
        try await eventually("State connected on the bus") { try await rig.property(BridgeNames.session, "State") == .uint32(2) }
        #expect(try await rig.property(BridgeNames.session, "UserId") == .string("agent"))
        #expect(try await rig.property(BridgeNames.session, "MessagingMode") == .string("sse"))
        #expect(try await rig.property(BridgeNames.session, "Server") == .string("http://127.0.0.1:\(rig.sim.port)"))

        // Station.Connect through busctl; the signal carries the station maps.
        let connect = try await rig.call(BridgeNames.station, "Connect", ["a{sv}", "4", "type", "s", "workstation", "workstation", "s", "7001", "readyForInteractions", "b", "true", "supportedMediaTypes", "as", "2", "call", "email"])
        #expect(connect.status == 0, "\(connect.stderr)")
        #expect(rig.sim.currentStation == StationSettings(kind: .workstation, workstation: "7001", supportedMediaTypes: [1, 3], readyForInteractions: true))
        try await eventually("station signal") {
            log.members("StationConnectionStateChanged").contains { $0.arguments[1]["id"] == .string("7001") }
        }
        let stationSignal = try #require(log.members("StationConnectionStateChanged").last)
        #expect(stationSignal.signature == "a{sv}a{sv}b")
        #expect(stationSignal.arguments[1]["stationSetting"] == .uint32(1))
        #expect(stationSignal.arguments[1]["allowedMediaTypes"] == .array(element: "u", [.uint32(1), .uint32(3)]))
        #expect(stationSignal.arguments[1]["sipUser"] == .string("sip-7001"))
        #expect(stationSignal.arguments[2] == .bool(true))
        try await eventually("Ready property") { try await rig.property(BridgeNames.station, "Ready") == .bool(true) }
        #expect(try await rig.property(BridgeNames.station, "Connected") == .bool(true))
        #expect(try await rig.property(BridgeNames.station, "Info")["id"] == .string("7001"))
        #expect(try await rig.property(BridgeNames.station, "Settings")["supportedMediaTypes"] == .strings(["call", "email"]))

        let notReady = try await rig.call(BridgeNames.station, "SetReady", ["b", "false"])
        #expect(notReady.status == 0)
        #expect(rig.sim.currentStation?.readyForInteractions == false)
        try await eventually("Ready false") { try await rig.property(BridgeNames.station, "Ready") == .bool(false) }

        // Calls alerting: one signal per message, and the Alerting property.
        let id1 = rig.sim.startAlerting(name: "ACME Corp", address: "+13175550123")
        let id2 = rig.sim.startAlerting(name: "Globex")
        rig.sim.stopAlerting(id1)
        try await eventually("3 alerting deltas") { log.members("InteractionAlerting").filter { $0.arguments[1] == .bool(true) }.count == 3 }
        let first = try #require(log.members("InteractionAlerting").first { $0.arguments[1] == .bool(true) })
        #expect(first.signature == "aa{sv}b")
        let d = try #require(first.arguments[0].arrayElements?.first)
        #expect(d["interactionId"] == .string(id1) && d["name"] == .string("ACME Corp") && d["address"] == .string("+13175550123"))
        #expect(d["alertType"] == .uint32(5) && d["alertAction"] == .uint32(1) && d["autoAnswer"] == .bool(false))
        #expect(d["queueType"] == .uint32(2) && d["queueName"] == .string("Support"))
        #expect(d["attributes"] == .stringDict([("Eic_RemoteName", "ACME Corp"), ("Eic_WorkgroupName", "Support")]))
        try await eventually("Alerting property") {
            try await rig.property(BridgeNames.interactions, "Alerting").arrayElements?.map { $0["interactionId"] } == [.string(id2)]
        }

        // Users: snapshot then a change; GetUsers merges.
        rig.sim.changeUser("user0003", property: "statusText", value: "Lunch")
        try await eventually("users change") {
            log.members("UsersChanged").contains { $0.arguments[1].arrayElements?.first?["statusText"] == .string("Lunch") }
        }
        let snapshot = try #require(log.members("UsersChanged").first)
        #expect(snapshot.signature == "aa{sv}aa{sv}asb" && snapshot.arguments[3] == .bool(false))
        #expect(snapshot.arguments[0].arrayElements?.count == 26)
        #expect(try await rig.property(BridgeNames.users, "Count") == .uint32(26))
        let users = try await rig.call(BridgeNames.users, "GetUsers", [])
        #expect(users.status == 0 && users.stdout.hasPrefix("aa{sv} 26"))
        let reply = try await rig.client.call(destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.users, member: "GetUsers")
        let u3 = try #require(reply[0].arrayElements?.first { $0["id"] == .string("user0003") })
        #expect(u3["statusText"] == .string("Lunch") && u3["displayName"] == .string("User 3") && u3["extension"] == .string("8003"))

        // Session methods.
        let disconnect = try await rig.call(BridgeNames.session, "Disconnect")
        #expect(disconnect.status == 0)
        try await eventually("stopped") { try await rig.property(BridgeNames.session, "State") == .uint32(4) }
        let notConnected = try await rig.call(BridgeNames.station, "SetReady", ["b", "true"])
        #expect(notConnected.stderr.contains("no ICWS session now"), "\(notConnected.stderr)")
        _ = try await rig.call(BridgeNames.session, "Reconnect")
        try await eventually("connected again") { try await rig.property(BridgeNames.session, "State") == .uint32(2) }
        #expect(log.all.contains { $0.member == "PropertiesChanged" && $0.arguments[0] == .string(BridgeNames.session) })
        await rig.stop()
    }

    @Test func badArgumentsGetClearErrors() async throws {
        let rig = try await BridgeRig.start { $0.noLicenseStations = ["7003"] }
        try await rig.harness.waitForState(.connected)
        let cases: [([String], String)] = [
            (["a{sv}", "1", "color", "s", "red"], "unknown key \"color\""),
            (["a{sv}", "1", "type", "s", "workstation"], "\"workstation\" is required"),
            (["a{sv}", "2", "type", "s", "workstation", "workstation", "u", "7001"], "\"workstation\" must be of type s, not u"),
            (["s", "oops"], "takes (a{sv}), not (s)"),
        ]
        for (args, message) in cases {
            let r = try await rig.call(BridgeNames.station, "Connect", args)
            #expect(r.status != 0)
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        // busctl names the error only in its message; a libdbus client sees the names.
        func errorName(_ member: String, _ args: [DBusValue]) async -> String? {
            do {
                _ = try await rig.client.call(destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.station, member: member, arguments: args)
                return nil
            } catch { return error.name }
        }
        #expect(await errorName("Connect", [.vardict([("type", .string("workstation")), ("workstation", .string("9999"))])]) == BridgeNames.errorPrefix + "UnknownStation")
        #expect(await errorName("Connect", [.vardict([("type", .string("workstation")), ("workstation", .string("7003"))])]) == BridgeNames.errorPrefix + "NoLicense")
        #expect(await errorName("SetReady", [.bool(true)]) == BridgeNames.errorPrefix + "NoStation")
        #expect(await errorName("Disconnect", []) == BridgeNames.errorPrefix + "NoStation")
        #expect(await errorName("GetSipCredentials", []) == BridgeNames.errorPrefix + "NoStation")
        #expect(await errorName("Connect", [.string("x")]) == "org.freedesktop.DBus.Error.InvalidArgs")
        #expect(await errorName("Connect", [.vardict([("type", .string("remoteNumber")), ("remoteNumber", .string("+1")), ("persistentConnection", .bool(true))])]) == nil)
        #expect(await errorName("Disconnect", []) == nil)
        #expect(try await rig.property(BridgeNames.session, "State") == .uint32(2), "the daemon goes on")
        await rig.stop()
    }

    @Test func policyRefusesOutsidersAndAllowsAgents() async throws {
        try #require(isRoot, "the policy test needs root to create its users")
        try await ensurePolicyUsers()
        let rig = try await BridgeRig.start()
        try await rig.harness.waitForState(.connected)
        let connectArgs = ["a{sv}", "2", "type", "s", "workstation", "workstation", "s", "7001"]
        let refused = try await rig.call(BridgeNames.station, "Connect", connectArgs, asUser: "icws-test-outsider")
        #expect(refused.status != 0 && refused.stderr.lowercased().contains("access denied") || refused.stderr.contains("AccessDenied") || refused.stderr.contains("rejected"), "\(refused.stderr)")
        #expect(rig.sim.currentStation == nil)
        let allowed = try await rig.call(BridgeNames.station, "Connect", connectArgs, asUser: "icws-test-agent")
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let sipOutsider = try await rig.call(BridgeNames.station, "GetSipCredentials", asUser: "icws-test-outsider")
        #expect(sipOutsider.status != 0)
        #expect(!sipOutsider.stdout.contains("sip-secret"))
        let sipAgent = try await rig.call(BridgeNames.station, "GetSipCredentials", asUser: "icws-test-agent")
        #expect(sipAgent.status == 0 && sipAgent.stdout.contains("\"sip-secret-7001\""), "\(sipAgent.stderr)")
        let readyOutsider = try await rig.call(BridgeNames.station, "SetReady", ["b", "true"], asUser: "icws-test-outsider")
        #expect(readyOutsider.status != 0)
        let reconnectOutsider = try await rig.call(BridgeNames.session, "Reconnect", asUser: "icws-test-outsider")
        #expect(reconnectOutsider.status != 0)
        // Everyone may read, introspect and list users.
        let users = try await rig.call(BridgeNames.users, "GetUsers", asUser: "icws-test-outsider")
        #expect(users.status == 0, "\(users.stderr)")
        let prop = try await rig.busctl(["get-property", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.station, "Connected"], asUser: "icws-test-outsider")
        #expect(prop.stdout.contains("b true"), "\(prop.stderr)")
        let intro = try await rig.busctl(["introspect", BridgeNames.busName, BridgeNames.objectPath], asUser: "icws-test-outsider")
        #expect(intro.status == 0)
        // Nobody but the service user (and root in this test bus) may own the name.
        let own = try await runCommand(["setpriv", "--reuid=icws-test-agent", "--regid=icws-test-agent", "--init-groups", "--", "gdbus", "call", "--address", rig.bus.address, "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.RequestName", BridgeNames.busName, "4"])
        #expect(own.status != 0 && own.stderr.contains("AccessDenied"), "\(own.stdout) \(own.stderr)")
        await rig.stop()
    }

    @Test func sipPasswordNeverInSignalsPropertiesOrLogs() async throws {
        let rig = try await BridgeRig.start()
        let log = SignalLog(rig.signals)
        try await rig.harness.waitForState(.connected)
        _ = try await rig.call(BridgeNames.station, "Connect", ["a{sv}", "2", "type", "s", "workstation", "workstation", "s", "7001"])
        let creds = try await rig.call(BridgeNames.station, "GetSipCredentials")
        #expect(creds.stdout.contains("sip-secret-7001"))
        // A station message that carries a sipPassword (as a server may send).
        rig.sim.emit(["__type": .string(ICWSMessage.TypeURN.stationConnectionStateChange), "isDelta": true, "newStationInfo": ["id": "7001", "extension": "7001", "sipPassword": "sip-secret-leak", "stationSetting": 1]])
        try await eventually("signal") { log.members("StationConnectionStateChanged").count >= 3 }
        for s in log.all { #expect(!s.arguments.description.contains("sip-secret"), "\(s.member)") }
        for iface in [BridgeNames.session, BridgeNames.station, BridgeNames.interactions, BridgeNames.users] {
            let all = try await rig.client.call(destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: "org.freedesktop.DBus.Properties", member: "GetAll", arguments: [.string(iface)])
            #expect(!all.description.contains("sip-secret"))
            #expect(!all.description.contains("\"secret\""))
        }
        await rig.stop()
        #expect(!rig.harness.logs.text.contains("sip-secret") && !rig.harness.logs.text.contains("secret\""))
    }
}
