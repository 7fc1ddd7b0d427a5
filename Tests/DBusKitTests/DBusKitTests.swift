import DBusKit
import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

let testXML = """
    <node>
      <!-- A test interface. -->
      <interface name="org.example.Test">
        <method name="Echo">
          <arg name="value" type="a{sv}" direction="in"/>
          <arg name="same" type="a{sv}" direction="out"/>
        </method>
        <method name="Types">
          <arg type="y" direction="in"/><arg type="b" direction="in"/><arg type="n" direction="in"/>
          <arg type="q" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="in"/>
          <arg type="x" direction="in"/><arg type="t" direction="in"/><arg type="d" direction="in"/>
          <arg type="s" direction="in"/><arg type="o" direction="in"/><arg type="g" direction="in"/>
          <arg type="(sv)" direction="in"/>
          <arg name="count" type="u" direction="out"/>
        </method>
        <method name="Later">
          <arg name="ms" type="u" direction="in"/>
          <arg name="ms_back" type="u" direction="out"/>
        </method>
        <method name="Fail"/>
        <method name="Burst">
          <arg name="count" type="u" direction="in"/>
        </method>
        <property name="Counter" type="u" access="read"/>
        <property name="Label" type="s" access="readwrite"/>
        <signal name="Tick">
          <arg name="sequence" type="u"/>
          <arg name="payload" type="a{sv}"/>
        </signal>
        <method name="Mixed">
          <arg name="count" type="u" direction="in"/>
        </method>
        <signal name="Alert">
          <arg name="details" type="aa{sv}"/>
          <arg name="is_delta" type="b"/>
        </signal>
      </interface>
    </node>
    """

/// The test object's model: a plain store of its properties that says what
/// changed (the object keeps no values of its own and reads them from here).
final class TestProperties: Sendable {
    let object: BusObject
    let interface: String
    private let values = Mutex<[String: DBusValue]>([:])

    init(_ object: BusObject, _ interface: String) {
        self.object = object
        self.interface = interface
        object.readProperties { [weak self] i, name in i == interface ? self?.values.withLock { $0[name] } : nil }
    }

    /// Stores the values and announces those that changed (none of them when one has the wrong type).
    func set(_ pairs: [(String, DBusValue)]) throws(BusError) {
        let changed = values.withLock { v in pairs.filter { v[$0.0] != $0.1 } }
        try object.announce(interface, changed: changed)
        values.withLock { v in for (name, value) in changed { v[name] = value } }
    }

    func set(_ name: String, _ value: DBusValue) throws(BusError) { try set([(name, value)]) }
}

struct TestService {
    let bus: PrivateBus
    let server: BusConnection
    let object: BusObject
    let props: TestProperties

    static func start(name: String = "org.example.TestService") async throws -> TestService {
        let bus = try PrivateBus(includeShippedPolicy: false)
        let server = try await BusConnection.connect(.address(bus.address), logger: Logger(label: "test.server"))
        let object = BusObject(path: "/org/example/Test", interfaces: try InterfaceDescription.parse(xml: testXML))
        let props = TestProperties(object, "org.example.Test")
        object.onMethod("org.example.Test", "Echo") { call throws(BusError) in [call.arguments[0]] }
        object.onMethod("org.example.Test", "Types") { call throws(BusError) in [.uint32(UInt32(call.arguments.count))] }
        object.onMethod("org.example.Test", "Later") { call throws(BusError) in
            let ms = call.arguments[0].uint32Value ?? 0
            try? await Task.sleep(for: .milliseconds(Int(ms)))
            return [.uint32(ms)]
        }
        object.onMethod("org.example.Test", "Fail") { _ throws(BusError) in
            throw BusError(name: "org.example.Error.Nope", message: "it failed on purpose")
        }
        object.onMethod("org.example.Test", "Burst") { [object] call throws(BusError) in
            let n = call.arguments[0].uint32Value ?? 0
            for i in 0..<n {
                try object.emit("org.example.Test", "Tick", [.uint32(i), .vardict([("i", .uint32(i)), ("s", .string("tick \(i)"))])])
            }
            return []
        }
        // Signals written as wire bytes (Alert), built by libdbus (Tick) and
        // PropertiesChanged, interleaved; every 500th Alert is 3 MiB, more
        // than the socket takes at once.
        object.onMethod("org.example.Test", "Mixed") { [object] call throws(BusError) in
            let n = call.arguments[0].uint32Value ?? 0
            let big = String(repeating: "w", count: 3 << 20)
            for i in 0..<n {
                switch i % 4 {
                case 0: try object.emit("org.example.Test", "Tick", [.uint32(i), .vardict([("s", .string("tick \(i)"))])])
                case 1: try props.set("Counter", .uint32(100_000 + i))
                default:
                    let text = i % 500 == 2 ? big : "alert \(i) é\u{0}名"
                    try object.emit("org.example.Test", "Alert", sizeBound: 4096 + text.utf8.count * 2) { w in
                        w.vardicts { a in
                            a.vardict { d in
                                d.uint32("i", i)
                                d.string("s", text)
                                d.stringDict("attrs", [("k", "v \(i)")])
                            }
                        }
                        w.bool(i % 2 == 0)
                    }
                }
            }
            return []
        }
        object.onSetProperty("org.example.Test", "Label") { value throws(BusError) in
            guard let s = value.stringValue, !s.isEmpty else { throw .invalidArgs("Label must not be empty") }
            try props.set("Label", .string(s))
        }
        try props.set([("Counter", .uint32(1)), ("Label", .string("start"))])
        server.export(object)
        try await server.requestName(name)
        return TestService(bus: bus, server: server, object: object, props: props)
    }

    func client() async throws -> BusConnection {
        try await BusConnection.connect(.address(bus.address), logger: Logger(label: "test.client"))
    }

    func stop() {
        server.close()
        bus.stop()
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct DBusKitTests {
    @Test func valuesRoundTripThroughTheBus() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        let nested: DBusValue = .vardict([
            ("s", .string("héllo")), ("b", .bool(true)), ("x", .int64(-5)), ("d", .double(2.5)),
            ("au", .array(element: "u", [.uint32(1), .uint32(2)])), ("empty", .array(element: "s", [])),
            ("dict", .vardict([("inner", .variant(.string("deep")))])), ("ss", .stringDict([("a", "b")])),
            ("strct", .structure([.string("a"), .int32(7)])), ("o", .objectPath("/a/b")), ("g", .signature("a{sv}")),
            ("y", .byte(255)), ("n", .int16(-3)), ("q", .uint16(3)), ("t", .uint64(UInt64.max)),
            ("nul", .string("a\u{0}b")),
        ])
        let reply = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Echo", arguments: [nested])
        guard case .dict(_, _, let entries) = reply[0] else { Issue.record("not a dict"); return }
        #expect(entries.count == 16)
        #expect(reply[0]["nul"] == .string("ab"), "NUL is dropped, not fatal")
        #expect(reply[0]["dict"]?["inner"] == .string("deep"))
        #expect(reply[0]["strct"] == .structure([.string("a"), .int32(7)]))
        #expect(reply[0]["empty"] == .array(element: "s", []))
        #expect(reply[0]["t"] == .uint64(UInt64.max))
    }

    @Test func realClientsCallAndIntrospect() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let types = try await svc.bus.busctl(["call", "--", "org.example.TestService", "/org/example/Test", "org.example.Test", "Types", "ybnqiuxtdsog(sv)", "1", "true", "-2", "3", "-4", "5", "-6", "7", "8.5", "str", "/p", "s", "k", "s", "v"])
        #expect(types.status == 0, "\(types.stderr)")
        #expect(types.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "u 13")
        let xml = try await svc.bus.busctl(["introspect", "--xml-interface", "org.example.TestService", "/org/example/Test"])
        #expect(xml.status == 0)
        let parsed = try InterfaceDescription.parse(xml: xml.stdout)
        let expected = try InterfaceDescription.parse(xml: testXML)[0]
        let served = try #require(parsed.first { $0.name == "org.example.Test" })
        #expect(served.methods == expected.methods && served.signals == expected.signals && served.properties == expected.properties)
        #expect(parsed.contains { $0.name == "org.freedesktop.DBus.Properties" })
        // The tree from the root down reaches the object.
        let tree = try await svc.bus.busctl(["tree", "--list", "org.example.TestService"])
        #expect(tree.stdout.contains("/org/example/Test"), "\(tree.stdout) \(tree.stderr)")
        let ping = try await svc.bus.busctl(["call", "org.example.TestService", "/org/example/Test", "org.freedesktop.DBus.Peer", "Ping"])
        #expect(ping.status == 0)
        let gdbus = try await runCommand(["gdbus", "introspect", "--address", svc.bus.address, "--dest", "org.example.TestService", "--object-path", "/org/example/Test"])
        #expect(gdbus.status == 0 && gdbus.stdout.contains("Echo(in  a{sv} value,"), "\(gdbus.stdout) \(gdbus.stderr)")
    }

    @Test func badCallsGetErrorsAndTheServiceGoesOn() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let wrong = try await svc.bus.busctl(["call", "org.example.TestService", "/org/example/Test", "org.example.Test", "Echo", "s", "x"])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("takes (a{sv}), not (s)"), "\(wrong.stderr)")
        let unknown = try await svc.bus.busctl(["call", "org.example.TestService", "/org/example/Test", "org.example.Test", "Nope"])
        #expect(unknown.stderr.contains("no method Nope"))
        let fail = try await svc.bus.busctl(["call", "org.example.TestService", "/org/example/Test", "org.example.Test", "Fail"])
        #expect(fail.stderr.contains("it failed on purpose"))
        let noObject = try await svc.bus.busctl(["call", "org.example.TestService", "/nowhere", "org.example.Test", "Fail"])
        #expect(noObject.status != 0)
        let client = try await svc.client()
        defer { client.close() }
        do {
            _ = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Fail")
            Issue.record("expected an error")
        } catch {
            #expect(error.name == "org.example.Error.Nope")
        }
        // Still alive after all of that.
        let later = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Later", arguments: [.uint32(10)])
        #expect(later == [.uint32(10)])
    }

    /// A reply past the bus's message limit is LimitsExceeded, not a dropped connection.
    @Test func aReplyTooLargeForTheBusIsLimitsExceeded() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        let big = DBusValue.vardict([("s", .string(String(repeating: "x", count: 40 << 20)))])
        do {
            _ = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Echo", arguments: [big])
            Issue.record("expected LimitsExceeded")
        } catch {
            #expect(error.name == "org.freedesktop.DBus.Error.LimitsExceeded", "\(error)")
        }
        #expect(svc.server.isConnected)
        let small = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Echo", arguments: [.vardict([("a", .uint32(1))])])
        #expect(small == [.vardict([("a", .uint32(1))])])
    }

    /// A caller that floods the service with calls gets LimitsExceeded past
    /// the in-flight bound; the others are answered.
    @Test func callsInFlightAreBounded() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        let results = await withTaskGroup(of: String.self) { group in
            for _ in 0..<700 {
                group.addTask {
                    do {
                        _ = try await client.call(
                            destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Later",
                            arguments: [.uint32(1500)])
                        return "ok"
                    } catch { return (error as? BusError)?.name ?? "\(error)" }
                }
            }
            var all: [String] = []
            for await r in group { all.append(r) }
            return all
        }
        let limited = results.filter { $0 == "org.freedesktop.DBus.Error.LimitsExceeded" }.count
        #expect(limited >= 700 - 512 && results.filter { $0 == "ok" }.count >= 400, "\(Dictionary(grouping: results, by: { $0 }).mapValues(\.count))")
        let after = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Later", arguments: [.uint32(1)])
        #expect(after == [.uint32(1)], "served again once the backlog is gone")
    }

    @Test func repliesComeLaterAndConcurrently() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        let start = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: [DBusValue].self) { group in
            for _ in 0..<20 {
                group.addTask { try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Later", arguments: [.uint32(300)]) }
            }
            var all: [[DBusValue]] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 20 && results.allSatisfy { $0 == [.uint32(300)] })
        #expect(ContinuousClock.now - start < .seconds(3), "handlers ran concurrently, not one after another")
        do {
            _ = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Later", arguments: [.uint32(2000)], timeout: .milliseconds(200))
            Issue.record("expected a timeout")
        } catch { #expect(error.name == "org.freedesktop.DBus.Error.NoReply") }
    }

    @Test func propertiesGetGetAllSetAndChanged() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        try await client.addMatch("type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'")
        let signals = client.signals()
        let get = try await svc.bus.busctl(["get-property", "org.example.TestService", "/org/example/Test", "org.example.Test", "Counter"])
        #expect(get.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "u 1")
        try svc.props.set("Counter", .uint32(2))
        try svc.props.set("Counter", .uint32(2))  // unchanged: no signal
        try svc.props.set("Counter", .uint32(3))
        var changes: [DBusValue] = []
        for await s in signals {
            changes.append(s.arguments[1])
            if changes.count == 2 { break }
        }
        #expect(changes == [.vardict([("Counter", .uint32(2))]), .vardict([("Counter", .uint32(3))])])
        let all = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.freedesktop.DBus.Properties", member: "GetAll", arguments: [.string("org.example.Test")])
        #expect(all[0]["Counter"] == .uint32(3) && all[0]["Label"] == .string("start"))
        let set = try await svc.bus.busctl(["set-property", "org.example.TestService", "/org/example/Test", "org.example.Test", "Label", "s", "new"])
        #expect(set.status == 0, "\(set.stderr)")
        #expect(svc.object.property("org.example.Test", "Label") == .string("new"))
        let readOnly = try await svc.bus.busctl(["set-property", "org.example.TestService", "/org/example/Test", "org.example.Test", "Counter", "u", "9"])
        #expect(readOnly.status != 0 && readOnly.stderr.contains("read-only"))
        let wrongType = try await svc.bus.busctl(["set-property", "org.example.TestService", "/org/example/Test", "org.example.Test", "Label", "u", "9"])
        #expect(wrongType.status != 0)
        #expect(throws: BusError.self) { try svc.props.set("Counter", .string("x")) }
    }

    @Test func nameAlreadyTakenIsAClearError() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let other = try await svc.client()
        defer { other.close() }
        do {
            try await other.requestName("org.example.TestService")
            Issue.record("expected the name to be taken")
        } catch {
            #expect(error.message.contains("already owned"))
        }
    }

    @Test func burstOf100000SignalsArrivesCompleteAndInOrder() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        try await client.addMatch("type='signal',interface='org.example.Test',member='Tick'")
        let signals = client.signals()
        let n: UInt32 = 100_000
        _ = try await client.call(destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Burst", arguments: [.uint32(n)], timeout: .seconds(120))
        var expected: UInt32 = 0
        for await s in signals {
            guard s.arguments.first == .uint32(expected) else {
                Issue.record("signal \(expected) missing or out of order: got \(String(describing: s.arguments.first))")
                break
            }
            expected += 1
            if expected == n { break }
        }
        #expect(expected == n)
    }

    @Test func wireSignalsKeepTheirOrderWithEveryOtherMessage() async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        try await client.addMatch("type='signal',sender='org.example.TestService'")
        let signals = client.signals()
        let n: UInt32 = 4_000
        _ = try await client.call(
            destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Mixed",
            arguments: [.uint32(n)], timeout: .seconds(120))
        var expected: UInt32 = 0
        for await s in signals {
            let seq: UInt32?
            switch s.member {
            case "Tick": seq = s.arguments.first?.uint32Value
            case "PropertiesChanged": seq = s.arguments.dropFirst().first?["Counter"]?.uint32Value.map { $0 - 100_000 }
            case "Alert":
                let d = s.arguments.first?.arrayElements?.first
                seq = d?["i"]?.uint32Value
                if let seq {
                    let text = d?["s"]?.stringValue ?? ""
                    #expect(seq % 500 == 2 ? text.utf8.count == 3 << 20 : text == "alert \(seq) é名")
                    #expect(d?["attrs"]?["k"]?.stringValue == "v \(seq)")
                    #expect(s.arguments.last == .bool(seq % 2 == 0))
                }
            default: seq = nil
            }
            guard let seq else { continue }
            guard seq == expected else {
                Issue.record("message \(expected) missing or out of order: got \(s.member) \(seq)")
                break
            }
            expected += 1
            if expected == n { break }
        }
        #expect(expected == n)
        // The connection is whole afterwards: calls still answer.
        let echo = try await client.call(
            destination: "org.example.TestService", path: "/org/example/Test", interface: "org.example.Test", member: "Echo",
            arguments: [.vardict([("after", .bool(true))])])
        #expect(echo.first?["after"] == .bool(true))
        #expect(svc.server.isConnected)
    }

    /// A bus that stops reading: what waits to be written grows only to
    /// `backlogHigh`, where `waitForRoom` holds the producer back, and goes on
    /// once the bus reads again; nothing is lost or reordered. For signals
    /// written as wire bytes (Alert) and signals libdbus sends (Tick).
    @Test(arguments: [true, false]) func aBusThatStopsReadingHoldsTheProducerBack(wire: Bool) async throws {
        let svc = try await TestService.start()
        defer { svc.stop() }
        let client = try await svc.client()
        defer { client.close() }
        let member = wire ? "Alert" : "Tick"
        try await client.addMatch("type='signal',interface='org.example.Test',member='\(member)'")
        let signals = client.signals()
        // Nothing waits: no wait.
        await svc.server.waitForRoom()
        try await svc.bus.pause(true)
        let text = String(repeating: "x", count: 60_000)
        let progress = Mutex(0)
        let producer = Task {
            // As a message source does: hand over a batch, then wait for room.
            var rounds = 0
            var sent: UInt32 = 0
            defer { progress.withLock { $0 = Int(sent) } }
            while sent < 400 {
                for _ in 0..<10 {
                    if wire {
                        try svc.object.emit("org.example.Test", "Alert", sizeBound: 4096 + text.utf8.count * 2) { [sent] w in
                            w.vardicts { a in a.vardict { d in d.uint32("i", sent); d.string("s", text) } }
                            w.bool(true)
                        }
                    } else {
                        try svc.object.emit("org.example.Test", "Tick", [.uint32(sent), .vardict([("s", .string(text))])])
                    }
                    sent += 1
                }
                rounds += 1
                progress.withLock { $0 = Int(sent) }
                await svc.server.waitForRoom()
            }
            return rounds
        }
        // The producer stops at the high mark (plus one batch), not at 400 x 60 kB.
        do {
            try await eventually("held back") { svc.server.backlogBytes > BusConnection.backlogHigh }
        } catch {
            producer.cancel()
            let outcome = await producer.result
            Issue.record("not held back: \(progress.withLock { $0 }) sent, backlog \(svc.server.backlogBytes), producer \(outcome)")
            throw error
        }
        try await Task.sleep(for: .milliseconds(500))
        let held = svc.server.backlogBytes
        #expect(held <= BusConnection.backlogHigh + 10 * 65_000, "backlog \(held)")
        #expect(held == svc.server.backlogBytes, "nothing moves while the bus is stopped")
        try await svc.bus.pause(false)
        let rounds = try await producer.value
        #expect(rounds == 40)
        var expected: UInt32 = 0
        for await s in signals where s.member == member {
            let seq = wire ? s.arguments.first?.arrayElements?.first?["i"]?.uint32Value : s.arguments.first?.uint32Value
            guard seq == expected else {
                Issue.record("signal \(expected) missing or out of order")
                break
            }
            expected += 1
            if expected == 400 { break }
        }
        #expect(expected == 400)
        try await eventually("all written") { svc.server.backlogBytes == 0 }
    }

    /// Nobody waits for room on a connection that closes, nor once cancelled.
    @Test func waitingForRoomEndsWithTheConnectionOrTheTask() async throws {
        for closeIt in [true, false] {
            let svc = try await TestService.start()
            defer { svc.stop() }
            try await svc.bus.pause(true)
            let text = String(repeating: "y", count: 1 << 20)
            for i in 0..<6 {
                try svc.object.emit("org.example.Test", "Alert", sizeBound: 4096 + text.utf8.count * 2) { w in
                    w.vardicts { a in a.vardict { d in d.uint32("i", UInt32(i)); d.string("s", text) } }
                    w.bool(true)
                }
            }
            try await eventually("over the mark") { svc.server.backlogBytes > BusConnection.backlogHigh }
            let ended = Mutex(false)
            let waiter = Task {
                await svc.server.waitForRoom()
                ended.withLock { $0 = true }
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(!ended.withLock { $0 }, "waits while the bus is stopped")
            if closeIt { svc.bus.stop() } else { waiter.cancel() }
            try await eventually(closeIt ? "ended by the close" : "ended by the cancel", timeout: .seconds(10)) { ended.withLock { $0 } }
            if closeIt { try await eventually("backlog dropped") { svc.server.backlogBytes == 0 } }
        }
    }

    @Test func disconnectIsNoticed() async throws {
        let svc = try await TestService.start()
        let noticed = Mutex(false)
        svc.server.onDisconnect { noticed.withLock { $0 = true } }
        svc.bus.stop()
        try await eventually("disconnect noticed") { noticed.withLock { $0 } }
        #expect(!svc.server.isConnected)
        do {
            _ = try await svc.server.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "GetId")
            Issue.record("expected an error")
        } catch { #expect(error.name == "org.freedesktop.DBus.Error.Disconnected") }
    }

    @Test func interfaceXMLParsing() throws {
        let parsed = try InterfaceDescription.parse(xml: testXML)
        #expect(parsed.count == 1)
        let i = parsed[0]
        #expect(i.method("Echo")?.inSignature == "a{sv}" && i.method("Echo")?.outSignature == "a{sv}")
        #expect(i.method("Types")?.inSignature == "ybnqiuxtdsog(sv)")
        #expect(i.method("Fail")?.inSignature == "")
        #expect(i.signal("Tick")?.signature == "ua{sv}")
        #expect(i.property("Label")?.writable == true && i.property("Counter")?.writable == false)
        #expect(i.xml.hasPrefix("<interface name=\"org.example.Test\">") && i.xml.hasSuffix("</interface>"))
        #expect(throws: BusError.self) { try InterfaceDescription.parse(xml: "<node><interface name=\"a\"><!-- x") }
    }
}
