import Bridge
import DBusKit
import Daemon
import Foundation
import ICWS
import ICWSSimulator
import Logging
import Testing
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Where the built executables are (beside the test bundle).
let binDirectory: URL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
func binary(_ name: String) -> String { binDirectory.appendingPathComponent(name).path }

/// The real icws-bridged process against icws-sim on a private bus, with a NOTIFY_SOCKET.
struct DaemonRig {
    let sim: ICWSSimulator
    let bus: PrivateBus
    let notify: NotifyListener
    let daemon: ChildProcess
    let dir: URL
    let configPath: String
    let logPath: String

    static func start(
        config extra: String = "", password: String? = "secret", watchdogUsec: Int? = 1_000_000,
        environment extraEnv: [String: String] = [:], serverPort: Int? = nil, server: String? = nil, sim existing: ICWSSimulator? = nil,
        systemBusLimits: Bool = false, logLevel: String = "debug", stderrPath: String? = nil,
        configure: (inout SimulatorConfiguration) -> Void = { _ in }
    ) async throws -> DaemonRig {
        let sim: ICWSSimulator
        if let existing { sim = existing } else { sim = try await startSimulator(configure) }
        let bus = try PrivateBus(systemLimits: systemBusLimits)
        let notify = try NotifyListener()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("daemon-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let configPath = dir.appendingPathComponent("icws-bridge.conf").path
        try """
            server = \(server ?? "http://127.0.0.1:\(serverPort ?? sim.port)")
            allow-insecure-http = yes
            user = agent
            stall-timeout = 3s
            \(extra)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notify.path
        env.removeValue(forKey: "JOURNAL_STREAM")
        env.removeValue(forKey: "CREDENTIALS_DIRECTORY")
        if let password { env["ICWS_PASSWORD"] = password } else { env.removeValue(forKey: "ICWS_PASSWORD") }
        if let watchdogUsec { env["WATCHDOG_USEC"] = String(watchdogUsec) } else { env.removeValue(forKey: "WATCHDOG_USEC") }
        env.merge(extraEnv) { $1 }
        let logPath = stderrPath ?? dir.appendingPathComponent("daemon.log").path
        let daemon = try ChildProcess(
            [binary("icws-bridged"), "--config", configPath, "--bus", bus.address, "--log-level", logLevel],
            environment: env, stderrPath: logPath)
        return DaemonRig(sim: sim, bus: bus, notify: notify, daemon: daemon, dir: dir, configPath: configPath, logPath: logPath)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func ctl(_ args: [String], asUser user: String? = nil) async throws -> CommandResult {
        try await runCommand([binary("icws-bridgectl")] + args + ["--bus", bus.address], asUser: user)
    }

    func property(_ interface: String, _ name: String) async throws -> String {
        try await bus.busctl(["get-property", BridgeNames.busName, BridgeNames.objectPath, interface, name]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() async {
        await daemon.stop()
        notify.stop()
        bus.stop()
        await sim.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct DaemonTests {
    @Test func notifyLifecycleReadyStatusWatchdogReloadStop() async throws {
        let rig = try await DaemonRig.start(config: "station-type = workstation\nstation-workstation = 7001\nstation-ready = yes")
        try await eventually("READY=1") { rig.notify.count("READY=1") >= 1 }
        try await eventually("connected status") { rig.notify.statuses().contains { $0.hasPrefix("connected to 127.0.0.1:\(rig.sim.port) as agent") } }
        try await eventually("station status") { rig.notify.statuses().contains { $0.contains("station 7001 ready") } }
        #expect(rig.sim.currentStation?.workstation == "7001")
        try await eventually("watchdog pings", timeout: .seconds(5)) { rig.notify.count("WATCHDOG=1") >= 3 }

        // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again; a changed subscription is re-made.
        try """
            server = http://127.0.0.1:\(rig.sim.port)
            allow-insecure-http = yes
            user = agent
            station-type = workstation
            station-workstation = 7001
            station-ready = yes
            users-subscription-id = reloaded
            users-ids = user0001,user0002
            """.write(toFile: rig.configPath, atomically: true, encoding: .utf8)
        rig.daemon.signal(SIGHUP)
        try await eventually("RELOADING=1") { rig.notify.all.contains { $0.contains("RELOADING=1") && $0.contains("MONOTONIC_USEC=") } }
        try await eventually("READY=1 after reload") { rig.notify.count("READY=1") >= 2 }
        try await eventually("new users subscription") { rig.sim.requests.contains { $0.method == "PUT" && $0.path.hasSuffix("/configuration/users/reloaded") } }
        #expect(rig.sim.loginCount == 1)

        // A broken file on reload is refused; the daemon keeps running.
        try "server = nonsense".write(toFile: rig.configPath, atomically: true, encoding: .utf8)
        rig.daemon.signal(SIGHUP)
        try await eventually("reload refused") { rig.notify.statuses().contains { $0.hasPrefix("reload failed") } }
        #expect(rig.daemon.poll() == nil)

        // SIGTERM: STOPPING=1, logout, exit 0 within 5 s.
        let start = ContinuousClock.now
        rig.daemon.signal(SIGTERM)
        let status = await rig.daemon.wait(timeout: .seconds(5))
        #expect(status == 0, "exit status \(String(describing: status)); log:\n\(rig.log)")
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(rig.notify.count("STOPPING=1") == 1)
        #expect(rig.sim.requests.contains { $0.method == "DELETE" && $0.path.hasSuffix("/connection") && !$0.path.contains("station") })
        #expect(rig.sim.liveSessionIds.isEmpty)
        await rig.stop()
    }

    @Test func signalsAndMethodsThroughTheRealDaemon() async throws {
        let rig = try await DaemonRig.start()
        try await eventually("connected") { (try? await rig.property(BridgeNames.session, "State")) == "u 2" }
        // monitor --json in the background, reading its lines.
        let monitorOut = rig.dir.appendingPathComponent("monitor.out").path
        _ = FileManager.default.createFile(atPath: monitorOut, contents: nil)
        let monitor = try ChildProcess(["sh", "-c", "exec \(binary("icws-bridgectl")) monitor --json --bus '\(rig.bus.address)' > \(monitorOut)"])
        try await Task.sleep(for: .milliseconds(300))
        let connect = try await rig.ctl(["connect", "workstation", "7002", "--ready", "--media", "call,chat"])
        #expect(connect.status == 0, "\(connect.stderr)")
        let put = rig.sim.requests.last { $0.method == "PUT" && $0.path.hasSuffix("/connection/station") }
        #expect(put?.body == ["__type": "urn:inin.com:connection:workstationSettings", "workstation": "7002", "supportedMediaTypes": [1, 2], "readyForInteractions": true])
        let notReady = try await rig.ctl(["not-ready"])
        #expect(notReady.status == 0)
        #expect(rig.sim.currentStation?.readyForInteractions == false)
        let id = rig.sim.startAlerting(name: "Initech", address: "+13175559999")
        rig.sim.changeUser("user0005", property: "statusText", value: "Gone Home")
        try await eventually("monitor lines") {
            let text = (try? String(contentsOfFile: monitorOut, encoding: .utf8)) ?? ""
            return text.contains("\"interactionId\":\"\(id)\"") && text.contains("\"statusText\":\"Gone Home\"")
        }
        let lines = try String(contentsOfFile: monitorOut, encoding: .utf8).split(separator: "\n")
        for line in lines { #expect((try? JSONValue.parse(String(line))) != nil, "not JSON: \(line)") }
        #expect(lines.contains { $0.contains("\"signal\":\"StationConnectionStateChanged\"") && $0.contains("\"id\":\"7002\"") })
        let status = try await rig.ctl(["status"])
        #expect(status.stdout.contains("Session:    connected (sse)") && status.stdout.contains("Station:    7002 (workstation)") && status.stdout.contains("Ready:      no"), "\(status.stdout)")
        let statusJSON = try await rig.ctl(["status", "--json"])
        #expect((try? JSONValue.parse(statusJSON.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))?["session"]?["State"] == .int(2))
        let users = try await rig.ctl(["users", "--json"])
        #expect((try? JSONValue.parse(users.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))?.arrayValue?.count == 26)
        let bad = try await rig.ctl(["connect", "workstation", "9999"])
        #expect(bad.status == 1 && bad.stderr.contains("UnknownStation"), "\(bad.stderr)")
        await monitor.stop()
        await rig.stop()
    }

    /// `monitor` prints one short line per change: sets by their size, one
    /// alert by its caller; --verbose prints the whole values.
    @Test func monitorLinesAreShortUnlessVerbose() async throws {
        let rig = try await DaemonRig.start()
        try await eventually("connected") { (try? await rig.property(BridgeNames.session, "State")) == "u 2" }
        let dir = rig.dir
        let path = { @Sendable (mode: String) in dir.appendingPathComponent("monitor-\(mode).out").path }
        var monitors: [ChildProcess] = []
        for mode in ["short", "verbose"] {
            let out = path(mode)
            _ = FileManager.default.createFile(atPath: out, contents: nil)
            monitors.append(try ChildProcess(["sh", "-c", "exec \(binary("icws-bridgectl")) monitor \(mode == "verbose" ? "--verbose" : "") --bus '\(rig.bus.address)' > \(out)"]))
        }
        try await Task.sleep(for: .milliseconds(400))
        let one = rig.sim.startAlerting(name: "Initech", address: "+13175559999")
        try await eventually("one alert") { ((try? String(contentsOfFile: path("short"), encoding: .utf8)) ?? "").contains(one) }
        for i in 0..<3 { _ = rig.sim.startAlerting(name: "Caller \(i)", address: "+1317555000\(i)") }
        // A new session: snapshots of the 26 users and the 4 alerting calls.
        _ = try await rig.ctl(["reconnect"])
        let read = { @Sendable (mode: String) in (try? String(contentsOfFile: path(mode), encoding: .utf8)) ?? "" }
        try await eventually("snapshots in both") { read("short").contains("UsersChanged [snapshot] added 26") && read("verbose").contains("UsersChanged [snapshot] added user0001,") }
        try await eventually("alerting snapshot") { read("short").contains("InteractionAlerting [snapshot] 4 START") }
        for m in monitors { await m.stop() }
        let short = read("short")
        let verbose = read("verbose")
        await rig.stop()
        #expect(short.contains("InteractionAlerting START \(one) Call from \"Initech\" +13175559999"), "\(short)")
        #expect(short.contains("Bridge1 Alerting=[4]") || short.contains("Alerting=[4]"), "the Alerting set by its size:\n\(short)")
        #expect(!short.contains("user0001"), "no user ids in a snapshot's short line:\n\(short)")
        for line in short.split(separator: "\n") { #expect(line.count < 200, "long line: \(line)") }
        #expect(verbose.contains("Caller 2") && verbose.contains("Initech"), "\(verbose)")
    }

    @Test func secretsStayOutOfTheLog() async throws {
        let rig = try await DaemonRig.start(password: "Pa55-w0rd-XYZ", configure: { $0.accounts = ["agent": "Pa55-w0rd-XYZ"] })
        try await eventually("connected") { (try? await rig.property(BridgeNames.session, "State")) == "u 2" }
        _ = try await rig.ctl(["connect", "workstation", "7001"])
        let sip = try await rig.ctl(["sip-credentials"])
        #expect(sip.stdout.contains("password=sip-secret-7001"))
        rig.sim.inject(.expire(challenge: true, location: nil))
        try await eventually("second login") { rig.sim.loginCount == 2 }
        try await eventually("connected again") { (try? await rig.property(BridgeNames.session, "State")) == "u 2" }
        await rig.daemon.stop()
        let log = rig.log
        await rig.stop()
        #expect(log.contains("session established"))
        #expect(!log.contains("Pa55-w0rd-XYZ"))
        #expect(!log.contains("sip-secret"))
        let csrfTokens = rig.sim.requests.compactMap { $0.body?["csrfToken"]?.stringValue }
        for t in csrfTokens { #expect(!log.contains(t)) }
        #expect(!log.contains("icws_100000"), "no cookie in the log")
    }

    @Test func badConfigurationExits78WithAClearMessage() async throws {
        let cases: [(String, String)] = [
            ("colour = blue", "colour: unknown key"),
            ("poll-interval = soon", "poll-interval: invalid duration"),
            ("messaging = carrier-pigeon", "messaging: expected auto, sse or poll"),
            ("station-type = fax", "station-type: expected workstation"),
        ]
        for (line, message) in cases {
            let rig = try await DaemonRig.start(config: line)
            let status = await rig.daemon.wait(timeout: .seconds(10))
            #expect(status == 78, "\(line): \(String(describing: status))")
            #expect(rig.log.contains(message), "\(line): \(rig.log)")
            try await eventually("ERRNO to systemd") { rig.notify.all.contains { $0.contains("ERRNO=") && $0.contains("STATUS=configuration error") } }
            #expect(rig.notify.count("READY=1") == 0)
            await rig.stop()
        }
        let noPassword = try await DaemonRig.start(password: nil)
        #expect(await noPassword.daemon.wait(timeout: .seconds(10)) == 78)
        #expect(noPassword.log.contains("no password"))
        await noPassword.stop()
    }

    @Test func passwordFileMustBeOwnerOnlyAndCredentialsWin() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pw-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("password").path
        try "secret\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let open = try await DaemonRig.start(config: "password-file = \(file)", password: nil)
        #expect(await open.daemon.wait(timeout: .seconds(10)) == 78)
        #expect(open.log.contains("must be readable by its owner only"), "\(open.log)")
        await open.stop()
        chmod(file, 0o600)
        let ok = try await DaemonRig.start(config: "password-file = \(file)", password: nil)
        try await eventually("connected with the password file") { (try? await ok.property(BridgeNames.session, "State")) == "u 2" }
        await ok.stop()
        // $CREDENTIALS_DIRECTORY/icws-password comes first.
        let creds = dir.appendingPathComponent("creds")
        try FileManager.default.createDirectory(at: creds, withIntermediateDirectories: true)
        try "secret".write(toFile: creds.appendingPathComponent("icws-password").path, atomically: true, encoding: .utf8)
        let viaCreds = try await DaemonRig.start(config: "password-file = /nonexistent", password: "wrong", environment: ["CREDENTIALS_DIRECTORY": creds.path])
        try await eventually("connected with the credential") { (try? await viaCreds.property(BridgeNames.session, "State")) == "u 2" }
        #expect(viaCreds.log.contains("systemd credential icws-password"))
        await viaCreds.stop()
        let check = try await runCommand([binary("icws-bridged"), "--check-config", "--config", "/nonexistent.conf"])
        #expect(check.status == 78 && check.stderr.contains("does not exist"))
    }

    @Test func httpsWithThePrivateCAOfCaFile() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let certs = try await TestCertificates.make(in: dir)
        let sim = try await startSimulator { $0.tls = (certs.serverCertificate, certs.serverKey) }
        #expect(sim.baseURL.hasPrefix("https://"))
        let url = "https://127.0.0.1:\(sim.port)"

        // Trusting the CA: a session, and station control over it.
        let trusting = try await DaemonRig.start(config: "ca-file = \(certs.caCertificate)", server: url, sim: sim)
        try await eventually("connected over https") { (try? await trusting.property(BridgeNames.session, "State")) == "u 2" }
        _ = try await trusting.ctl(["connect", "workstation", "7001", "--ready"])
        try await eventually("station over https") { sim.currentStation?.workstation == "7001" }
        await trusting.daemon.stop()
        trusting.notify.stop()
        trusting.bus.stop()

        // Without the CA the handshake fails, the daemon says why and keeps trying.
        let wary = try await DaemonRig.start(server: url, sim: sim)
        try await eventually("a TLS error") { (try? await wary.property(BridgeNames.session, "LastError"))?.contains("certificate is not trusted") == true }
        #expect(!wary.log.contains(".build/checkouts"), "a short message, not BoringSSL's source path")
        #expect((try await wary.property(BridgeNames.session, "State")) == "u 3")
        #expect(wary.daemon.poll() == nil, "still running")
        #expect(sim.requests.filter { $0.path.lowercased() == "/icws/connection" }.count == 1, "only the trusting daemon's login reached the server")
        // A reload that adds the CA: the next attempt goes through, no restart needed.
        let handle = try #require(FileHandle(forWritingAtPath: wary.configPath))
        handle.seekToEndOfFile()
        handle.write(Data("ca-file = \(certs.caCertificate)\n".utf8))
        try handle.close()
        wary.daemon.signal(SIGHUP)
        try await eventually("connected after the reload", timeout: .seconds(20)) { (try? await wary.property(BridgeNames.session, "State")) == "u 2" }
        await wary.daemon.stop()
        wary.notify.stop()
        wary.bus.stop()

        // A CA rotated in place (same ca-file path, new contents) is read on reload.
        let other = dir.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        let elsewhere = try await TestCertificates.make(in: other, names: ["cic.example.net"])
        let rotating = dir.appendingPathComponent("rotating.pem").path
        try FileManager.default.copyItem(atPath: elsewhere.caCertificate, toPath: rotating)
        let rotated = try await DaemonRig.start(config: "ca-file = \(rotating)", server: url, sim: sim)
        try await eventually("the old CA is not trusted") {
            (try? await rotated.property(BridgeNames.session, "LastError"))?.contains("certificate is not trusted") == true
        }
        try FileManager.default.removeItem(atPath: rotating)
        try FileManager.default.copyItem(atPath: certs.caCertificate, toPath: rotating)
        rotated.daemon.signal(SIGHUP)
        try await eventually("connected after the rotation", timeout: .seconds(20)) {
            (try? await rotated.property(BridgeNames.session, "State")) == "u 2"
        }
        await rotated.daemon.stop()
        rotated.notify.stop()
        rotated.bus.stop()

        // A certificate that does not name the host of the server URL.
        let misnamedSim = try await startSimulator { $0.tls = (elsewhere.serverCertificate, elsewhere.serverKey) }
        let misnamed = try await DaemonRig.start(
            config: "ca-file = \(elsewhere.caCertificate)", server: "https://127.0.0.1:\(misnamedSim.port)", sim: misnamedSim)
        try await eventually("a host name error") {
            (try? await misnamed.property(BridgeNames.session, "LastError"))?.contains("does not name the host") == true
        }
        await misnamed.stop()

        // A ca-file that is not PEM stops the start with a clear message.
        let junk = dir.appendingPathComponent("junk.pem").path
        try "not a certificate\n".write(toFile: junk, atomically: true, encoding: .utf8)
        let bad = try await DaemonRig.start(config: "ca-file = \(junk)", server: url, sim: sim)
        #expect(await bad.daemon.wait(timeout: .seconds(10)) == 78)
        #expect(bad.log.contains("ca-file: \(junk)"), "\(bad.log)")
        await bad.stop()
    }

    @Test func aHungDaemonStopsPingingTheWatchdog() async throws {
        let rig = try await DaemonRig.start(watchdogUsec: 400_000)
        try await eventually("pings") { rig.notify.count("WATCHDOG=1") >= 3 }
        rig.daemon.signal(SIGSTOP)
        try await Task.sleep(for: .milliseconds(300))
        let frozenAt = ContinuousClock.now
        let before = rig.notify.count("WATCHDOG=1")
        try await Task.sleep(for: .seconds(1))
        // A service manager with WatchdogSec=0.4s would have killed it by now: nothing came for 2.5 intervals.
        #expect(rig.notify.count("WATCHDOG=1") == before)
        #expect((rig.notify.lastTime(of: "WATCHDOG=1") ?? frozenAt) <= frozenAt)
        rig.daemon.signal(SIGCONT)
        try await eventually("pings again") { rig.notify.count("WATCHDOG=1") > before }
        await rig.stop()
    }

    @Test func clientErrorsWhenTheDaemonIsAbsentOrThePolicyRefuses() async throws {
        let bus = try PrivateBus()
        defer { bus.stop() }
        let absent = try await runCommand([binary("icws-bridgectl"), "status", "--bus", bus.address])
        #expect(absent.status == 69 && absent.stderr.contains("icws-bridged is not running"), "\(absent.stderr)")
        try #require(isRoot, "the policy part needs root to create its users")
        try await ensurePolicyUsers()
        let rig = try await DaemonRig.start()
        try await eventually("connected") { (try? await rig.property(BridgeNames.session, "State")) == "u 2" }
        let refused = try await rig.ctl(["ready"], asUser: "icws-test-outsider")
        #expect(refused.status == 77 && refused.stderr.contains("icws-agents"), "\(refused.stderr)")
        let allowed = try await rig.ctl(["connect", "stationless", "--ready"], asUser: "icws-test-agent")
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let status = try await rig.ctl(["status"], asUser: "icws-test-outsider")
        #expect(status.status == 0)
        await rig.stop()
    }

    @Test func nameAlreadyTakenIsAClearFailure() async throws {
        let rig = try await DaemonRig.start()
        try await eventually("READY") { rig.notify.count("READY=1") == 1 }
        let second = try ChildProcess(
            [binary("icws-bridged"), "--config", rig.configPath, "--bus", rig.bus.address],
            environment: ["ICWS_PASSWORD": "secret", "PATH": "/usr/bin:/bin"], stderrPath: rig.dir.appendingPathComponent("second.log").path)
        #expect(await second.wait(timeout: .seconds(10)) == 1)
        let log = (try? String(contentsOfFile: rig.dir.appendingPathComponent("second.log").path, encoding: .utf8)) ?? ""
        #expect(log.contains("already owned"), "\(log)")
        await rig.stop()
    }
}
