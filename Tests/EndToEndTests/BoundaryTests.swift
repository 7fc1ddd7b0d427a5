import Bridge
import DBusKit
import Daemon
import Foundation
import ICWS
import ICWSSimulator
import Logging
import Synchronization
import Testing
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Collects every signal the daemon emits, for tests that count them.
final class SignalRecorder: Sendable {
    let connection: BusConnection
    private let received = Mutex<[SignalMessage]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(address: String) async throws {
        connection = try await BusConnection.connect(.address(address), logger: Logger(label: "recorder"))
        try await connection.addMatch("type='signal',sender='\(BridgeNames.busName)'")
        let stream = connection.signals()
        let t = Task { [weak self] in
            for await s in stream { self?.received.withLock { $0.append(s) } }
        }
        task.withLock { $0 = t }
    }

    var all: [SignalMessage] { received.withLock { $0 } }
    func members(_ member: String) -> [SignalMessage] { all.filter { $0.member == member } }

    func close() {
        task.withLock { $0?.cancel() }
        connection.close()
    }
}

/// Each class of the boundary catalogue (docs/boundaries.md) through the real
/// daemon on a real dbus-daemon.
@Suite(.serialized) struct BoundaryTests {
    func connected(_ rig: DaemonRig) async throws {
        try await eventually("connected", timeout: .seconds(15)) { (try? await rig.property(BridgeNames.session, "State")) == "u 2" }
    }

    /// Connected, and messages flow: the users snapshot (icws-sim's 26 users) arrived.
    func flowing(_ rig: DaemonRig) async throws {
        try await connected(rig)
        try await eventually("the users snapshot", timeout: .seconds(15)) { (try? await rig.property(BridgeNames.users, "Count")) == "u 26" }
    }

    /// Depth: a user property nested 40 containers deep (D-Bus allows 32) is
    /// published as its compact JSON text; the daemon stays on the bus.
    @Test func deepServerValuesAreFlattenedToJSONText() async throws {
        let rig = try await DaemonRig.start(systemBusLimits: true)
        try await flowing(rig)
        let recorder = try await SignalRecorder(address: rig.bus.address)
        var nested: JSONValue = "bottom"
        for i in 0..<40 { nested = i % 2 == 0 ? .array([nested]) : .object([("k", nested)]) }
        let deep = nested
        rig.sim.changeUser("user0003", property: "statusText", value: deep)
        try await eventually("UsersChanged with the deep value") {
            recorder.members("UsersChanged").contains { s in
                s.arguments[1].arrayElements?.first?["statusText"]?.stringValue == deep.serialized()
            }
        }
        // A shallow value keeps its structure.
        rig.sim.changeUser("user0004", property: "statusText", value: ["a": [1, 2]])
        try await eventually("UsersChanged with the shallow value") {
            recorder.members("UsersChanged").contains { s in
                s.arguments[1].arrayElements?.first?["statusText"]?["a"]?.arrayElements?.count == 2
            }
        }
        #expect(rig.daemon.poll() == nil, "still running: \(rig.log)")
        let users = try await rig.bus.busctl(["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.users, "GetUsers"])
        #expect(users.status == 0, "\(users.stderr)")
        recorder.close()
        await rig.stop()
    }

    /// Size: a users snapshot of about 40 MB on a bus that takes 32 MiB
    /// messages is split into signals of at most 8 MiB, in order; GetUsers
    /// answers LimitsExceeded instead of getting the daemon dropped.
    @Test func largeSnapshotsAreSplitAndLargeRepliesRefused() async throws {
        let rig = try await DaemonRig.start(systemBusLimits: true)
        try await flowing(rig)
        let recorder = try await SignalRecorder(address: rig.bus.address)
        let note = String(repeating: "n", count: 10_000)
        let count = 4_000
        let added: [JSONValue] = (0..<count).map { i in
            ["configurationId": ["id": .string("big\(i)"), "displayName": .string("Big \(i)")], "notes": .string(note)]
        }
        _ = rig.sim.emit([
            "__type": "urn:inin.com:configuration.people:usersMessage", "isDelta": false, "subscriptionId": "icws-bridge-users",
            "added": .array(added), "changed": [], "removed": [],
        ])
        try await eventually("every user arrived", timeout: .seconds(60)) {
            recorder.members("UsersChanged").reduce(0) { $0 + ($1.arguments[0].arrayElements?.count ?? 0) } >= count
        }
        let parts = recorder.members("UsersChanged").filter {
            $0.arguments[0].arrayElements?.first?["id"]?.stringValue?.hasPrefix("big") == true
        }
        #expect(parts.count >= 5, "40 MB in signals of at most 8 MiB")
        #expect(parts.first?.arguments[3] == .bool(false), "the first keeps is_delta")
        #expect(parts.dropFirst().allSatisfy { $0.arguments[3] == .bool(true) }, "the rest say true")
        let ids = parts.flatMap { $0.arguments[0].arrayElements ?? [] }.compactMap { $0["id"]?.stringValue }
        #expect(ids.count == count && ids == (0..<count).map { "big\($0)" }, "in order, each once (\(ids.count) ids)")
        #expect(try await rig.property(BridgeNames.users, "Count") == "u \(count)")
        let reply = try await rig.bus.busctl(["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.users, "GetUsers"])
        #expect(reply.status != 0 && reply.stderr.contains("D-Bus message may carry"), "\(reply.stderr)")
        #expect(rig.daemon.poll() == nil, "still running and on the bus: \(rig.log.suffix(2000))")
        #expect(try await rig.property(BridgeNames.session, "State") == "u 2")
        recorder.close()
        await rig.stop()
    }

    /// Slow callers: calls with a 30 MiB argument of the wrong type are
    /// refused before their arguments are read; the watchdog keeps its rhythm.
    @Test func hugeCallsOfTheWrongTypeDoNotHoldTheDaemon() async throws {
        let rig = try await DaemonRig.start(watchdogUsec: 1_000_000, systemBusLimits: true)
        try await connected(rig)
        try await eventually("watchdog pings") { rig.notify.count("WATCHDOG=1") >= 2 }
        let client = try await BusConnection.connect(.address(rig.bus.address), logger: Logger(label: "caller"))
        let huge = DBusValue.string(String(repeating: "x", count: 30 << 20))
        let started = ContinuousClock.now
        var errors: [String] = []
        for _ in 0..<3 {
            do {
                _ = try await client.call(
                    destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.station, member: "SetReady",
                    arguments: [huge], timeout: .seconds(20))
            } catch { errors.append(error.name) }
        }
        #expect(errors == Array(repeating: "org.freedesktop.DBus.Error.InvalidArgs", count: 3))
        try await Task.sleep(for: .seconds(1))
        let pings = rig.notify.timed.filter { $0.1.split(separator: "\n").contains("WATCHDOG=1") && $0.0 >= started }.map(\.0)
        let gaps = zip(pings, pings.dropFirst()).map { $1 - $0 }
        // Pings come every 500 ms; a stall of the bus thread would show as a gap of seconds.
        #expect((gaps.max() ?? .zero) < .milliseconds(1500), "watchdog gaps \(gaps)")
        #expect(rig.daemon.poll() == nil)
        client.close()
        await rig.stop()
    }

    /// Command storms: 50 Reconnect() calls at once share one login.
    @Test func concurrentReconnectsShareOneLogin() async throws {
        let rig = try await DaemonRig.start()
        try await connected(rig)
        let before = rig.sim.loginCount
        let client = try await BusConnection.connect(.address(rig.bus.address), logger: Logger(label: "storm"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    _ = try await client.call(
                        destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.session, member: "Reconnect")
                }
            }
            try await group.waitForAll()
        }
        try await eventually("a new session") { rig.sim.loginCount > before }
        try await connected(rig)
        try await Task.sleep(for: .seconds(2))
        #expect(rig.sim.loginCount == before + 1, "logins: \(rig.sim.loginCount - before)")
        #expect(rig.sim.liveSessionIds.count == 1)
        client.close()
        await rig.stop()
    }

    /// Late answers: a station PUT on the old session that finishes after
    /// Reconnect() does not stop the station being restored on the new one.
    @Test func aLateAnswerForAnEndedSessionDoesNotUndoTheRestore() async throws {
        let rig = try await DaemonRig.start(config: "station-type = workstation\nstation-workstation = 7001")
        try await connected(rig)
        try await eventually("first station") { rig.sim.currentStation?.workstation == "7001" }
        let firstSession = rig.sim.liveSessionIds
        rig.sim.setStationDelay(.milliseconds(1500))
        let connect = Task { try await rig.ctl(["connect", "workstation", "7002", "--ready"]) }
        try await Task.sleep(for: .milliseconds(300))
        _ = try await rig.ctl(["reconnect"])
        try await eventually("a new session") { !rig.sim.liveSessionIds.isEmpty && rig.sim.liveSessionIds != firstSession }
        let result = try await connect.value
        rig.sim.setStationDelay(.zero)
        #expect(result.status == 0, "\(result.stderr)")
        try await eventually("the newest request restored on the new session", timeout: .seconds(10)) {
            rig.sim.currentStation?.workstation == "7002" && rig.sim.currentStation?.readyForInteractions == true
        }
        try await eventually("Connected") { (try? await rig.property(BridgeNames.station, "Connected")) == "b true" }
        await rig.stop()
    }

    /// Bursts: 20,000 distinct alerting interactions. Each message costs its
    /// own signal; `Alerting` is carried whole only while it is small, then
    /// announced as invalidated, and Get reads all of it.
    @Test func alertingBurstsCostLinearBusTraffic() async throws {
        let rig = try await DaemonRig.start()
        try await flowing(rig)
        let recorder = try await SignalRecorder(address: rig.bus.address)
        try await recorder.connection.addMatch("type='signal',interface='org.freedesktop.DBus.Properties'")
        let count = 20_000
        for i in 0..<count { _ = rig.sim.startAlerting(name: "Caller \(i)", address: "+1317555\(i)") }
        try await eventually("every alert", timeout: .seconds(120)) { recorder.members("InteractionAlerting").count >= count }
        try await eventually("the last PropertiesChanged") {
            recorder.members("PropertiesChanged").last?.arguments[2].arrayElements?.contains(.string("Alerting")) == true
        }
        let changes = recorder.members("PropertiesChanged").filter { $0.arguments.first == .string(BridgeNames.interactions) }
        let largest = changes.compactMap { $0.arguments[1]["Alerting"]?.arrayElements?.count }.max() ?? 0
        #expect(largest <= BusLimits.propertyValueEntries, "PropertiesChanged carried \(largest) entries")
        let get = try await rig.bus.busctl(["--json=short", "get-property", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.interactions, "Alerting"])
        let parsed = try JSONValue.parse(get.stdout)
        #expect(parsed["data"]?.arrayValue?.count == count)
        recorder.close()
        await rig.stop()
    }

    /// Bursts against a bus that stops reading (dbus-daemon stopped for 5 s,
    /// longer than the rig's 3 s stall-timeout): the daemon takes no more
    /// from the server than `BusConnection.backlogHigh` ahead of the bus, so
    /// 75 MB of messages wait at the server, not in the daemon's memory; the
    /// stream is not taken for stalled meanwhile; once the bus reads again
    /// every message becomes its signal, in order, on the same session.
    @Test func aBusThatStopsReadingHoldsTheServerBackAndLosesNothing() async throws {
        let rig = try await DaemonRig.start()
        try await flowing(rig)
        let recorder = try await SignalRecorder(address: rig.bus.address)
        let attribute = String(repeating: "a", count: 5_000)
        let count = 15_000
        let prepared = rig.sim.prepare(
            (0..<count).map { i in
                [
                    "__type": .string(ICWSMessage.TypeURN.interactionAlerting), "isDelta": true,
                    "alertingInteractionDetails": [
                        [
                            "interactionId": .string("held\(i)"), "interactionType": "Call", "name": "Held", "address": "+1",
                            "alertType": 5, "alertAction": 2, "autoAnswer": false, "attributes": ["Padding": .string(attribute)],
                        ]
                    ],
                ]
            })
        let before = rssMB(rig.daemon.pid)
        try await rig.bus.pause(true)
        rig.sim.emit(prepared)
        try await Task.sleep(for: .seconds(5))
        let held = rssMB(rig.daemon.pid)
        #expect(rig.daemon.poll() == nil)
        #expect(held - before < 30, "RSS grew from \(before) to \(held) MB while the bus was stopped")
        try await rig.bus.pause(false)
        try await eventually("every alert", timeout: .seconds(120)) { recorder.members("InteractionAlerting").count >= count }
        let ids = recorder.members("InteractionAlerting").compactMap { $0.arguments.first?.arrayElements?.first?["interactionId"]?.stringValue }
        #expect(ids == (0..<count).map { "held\($0)" }, "every message once, in order")
        #expect(rig.sim.loginCount == 1)
        #expect(!rig.log.contains("stalled"), "the held-back stream was not taken for stalled")
        recorder.close()
        await rig.stop()
    }

    /// Scheme: on an https session, a 401 whose challenge points to http is
    /// refused (no login there, the password stays home), LastError says so,
    /// and the daemon backs off and logs in again over https.
    @Test func aChallengeToPlainHTTPIsRefused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("down-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let certs = try await TestCertificates.make(in: dir)
        let sim = try await startSimulator { $0.tls = (certs.serverCertificate, certs.serverKey) }
        let trap = try await startSimulator()
        let rig = try await DaemonRig.start(
            config: "ca-file = \(certs.caCertificate)\nbackoff-initial = 200ms", server: "https://127.0.0.1:\(sim.port)",
            sim: sim)
        try await connected(rig)
        sim.inject(.expire(challenge: true, location: "http://127.0.0.1:\(trap.port)/icws/connection"))
        try await eventually("refused in LastError") {
            (try? await rig.property(BridgeNames.session, "LastError"))?.contains("refused") == true
        }
        sim.inject(.clear)
        try await eventually("logged in again over https", timeout: .seconds(15)) { sim.loginCount >= 2 }
        try await connected(rig)
        #expect(trap.loginCount == 0, "the http host never saw a login")
        #expect(trap.requests.isEmpty)
        await trap.stop()
        await rig.stop()
    }

    /// Secrets: at trace level, AsyncHTTPClient logs response heads and body
    /// bytes; none of password, CSRF token, cookie or SIP password reach the log.
    @Test func noSecretAtTraceLevel() async throws {
        let rig = try await DaemonRig.start(
            password: "Pa55-w0rd-XYZ", logLevel: "trace", configure: { $0.accounts = ["agent": "Pa55-w0rd-XYZ"] })
        try await connected(rig)
        _ = try await rig.ctl(["connect", "workstation", "7001"])
        let sip = try await rig.ctl(["sip-credentials"])
        #expect(sip.stdout.contains("password=sip-secret-7001"))
        rig.sim.inject(.expire(challenge: true, location: nil))
        try await eventually("second login") { rig.sim.loginCount == 2 }
        try await connected(rig)
        await rig.daemon.stop()
        let log = rig.log
        await rig.stop()
        #expect(log.contains("HTTP response part received"), "AsyncHTTPClient's trace is in the log")
        var secrets = ["Pa55-w0rd-XYZ", "sip-secret-7001"]
        secrets += rig.sim.requests.compactMap { $0.body?["csrfToken"]?.stringValue }
        for s in secrets {
            #expect(!log.contains(s), "\(s) in the log")
            let hex = s.utf8.map { String(format: "%02x", $0) }
            #expect(!log.contains(hex.joined(separator: " ")) && !log.contains(hex.joined()), "\(s) as hex in the log")
        }
        #expect(!log.contains("icws_100000"), "no cookie name=value in the log")
        #expect(log.contains("<redacted>"), "the filter was at work")
    }

    /// Configuration: a duration that cannot be held in nanoseconds, or is
    /// out of its key's range, is exit 78 naming the key.
    @Test func outOfRangeConfigurationExits78() async throws {
        for line in ["request-timeout = 10000000000", "poll-interval = 1e300", "stall-timeout = 0", "station-type = workstation\nstation-workstation = 7001\nstation-connection-mode = 7"] {
            let rig = try await DaemonRig.start(config: line)
            let status = await rig.daemon.wait(timeout: .seconds(10))
            #expect(status == 78, "\(line): \(String(describing: status))")
            let key = line.split(separator: "\n").last!.split(separator: " ").first!
            #expect(rig.log.contains("\(key):"), "\(line): \(rig.log)")
            await rig.stop()
        }
        let check = try await runCommand([binary("icws-bridged"), "--check-config", "--config", "/dev/zero"], environment: ["ICWS_PASSWORD": "x"])
        #expect(check.status == 78 && check.stderr.contains("not a regular file"), "\(check.stderr)")
    }

    /// Server text cannot add sd_notify assignments (systemd splits on \r and \n).
    @Test func serverTextCannotForgeNotifyAssignments() async throws {
        let rig = try await DaemonRig.start()
        try await flowing(rig)
        rig.sim.inject(.down(shouldReconnect: false, reason: "bye\rWATCHDOG=trigger\nSTOPPING=1"))
        try await eventually("stopped") { (try? await rig.property(BridgeNames.session, "State")) == "u 4" }
        try await eventually("the reason in STATUS=") { rig.notify.statuses().contains { $0.contains("bye") } }
        #expect(!rig.notify.all.contains { $0.split(separator: "\n").contains("WATCHDOG=trigger") })
        #expect(rig.notify.count("STOPPING=1") == 0)
        #expect(rig.daemon.poll() == nil)
        await rig.stop()
    }

    /// Nothing polls: the daemon never starts libdispatch's worker pool
    /// (whose monitor wakes every second); its threads are NIO's loops, the
    /// bus thread, the signal thread and the main thread, whatever it does.
    @Test func noLibdispatchWorkerEverStarts() async throws {
        let rig = try await DaemonRig.start(config: "station-type = workstation\nstation-workstation = 7001")
        try await connected(rig)
        _ = try await rig.ctl(["ready"])
        _ = rig.sim.startAlerting()
        rig.daemon.signal(SIGHUP)
        try await eventually("reloaded") { rig.notify.count("READY=1") >= 2 }
        _ = try await rig.ctl(["reconnect"])
        try await connected(rig)
        try await Task.sleep(for: .seconds(1))
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(rig.daemon.pid)/task")
        let names = tasks.compactMap { try? String(contentsOfFile: "/proc/\(rig.daemon.pid)/task/\($0)/comm", encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(!names.contains { $0.contains("qos") }, "threads: \(names)")
        #expect(names.contains("dbus") && names.contains("signals"), "threads: \(names)")
        await rig.stop()
    }

    /// Rate of process signals: a burst of SIGHUP leaves at most one reload
    /// pending; the daemon goes on, on the same session.
    @Test func aBurstOfReloadSignalsIsHarmless() async throws {
        let rig = try await DaemonRig.start()
        try await flowing(rig)
        for _ in 0..<50 { rig.daemon.signal(SIGHUP) }
        try await eventually("a reload") { rig.notify.count("READY=1") >= 2 }
        try await Task.sleep(for: .seconds(1))
        #expect(rig.daemon.poll() == nil, "still running")
        #expect(rig.notify.count("RELOADING=1") <= 50)
        #expect(try await rig.property(BridgeNames.session, "State") == "u 2")
        #expect(rig.sim.loginCount == 1, "an unchanged configuration keeps the session")
        await rig.stop()
    }
}
