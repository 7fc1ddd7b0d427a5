import Bridge
import DBusKit
import Foundation
import ICWSProtocol
import ICWSSimulator
import Testing
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A desktop of the test's own: Xvfb on a display it picks itself, a private
/// session bus, and dunst (a real notification server) drawing on that display
/// with a dunstrc whose script rule records every notification it shows.
final class TestDesktop: @unchecked Sendable {
    // Unchecked: every field is set once in `start` and only read afterwards.
    static let tools = ["Xvfb", "dunst", "dunstctl", "xwd", "dbus-daemon", "gdbus"]
    static let width = 1024
    static let height = 768

    /// The tools that are not on PATH (the test skips when any is missing).
    static let missingTools: [String] = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return tools.filter { tool in
            !path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
        }
    }()

    let dir: URL
    let display: String
    let address: String
    private var processes: [ChildProcess] = []

    private init(dir: URL, display: String, address: String, processes: [ChildProcess]) {
        self.dir = dir
        self.display = display
        self.address = address
        self.processes = processes
    }

    static func start() async throws -> TestDesktop {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("icws-desktop-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var started: [ChildProcess] = []
        do {
            // -displayfd: Xvfb takes a free display and says which.
            let xvfb = try ChildProcess(
                ["Xvfb", "-displayfd", "1", "-screen", "0", "\(width)x\(height)x24", "-nolisten", "tcp", "-br", "-noreset"],
                captureStdout: true, stderrPath: dir.appendingPathComponent("xvfb.log").path)
            started.append(xvfb)
            guard let number = xvfb.readLine().map({ $0.trimmingCharacters(in: .whitespaces) }), Int(number) != nil else {
                throw TimeoutError(description: "Xvfb did not report a display (see \(dir.path)/xvfb.log)")
            }
            let display = ":\(number)"
            // A session bus without service directories: nothing is activated behind the test's back.
            let busConfig = dir.appendingPathComponent("session.conf")
            try """
                <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
                 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
                <busconfig>
                  <type>session</type>
                  <listen>unix:path=\(dir.path)/session-bus</listen>
                  <auth>EXTERNAL</auth>
                  <policy context="default">
                    <allow send_destination="*" eavesdrop="true"/>
                    <allow eavesdrop="true"/>
                    <allow own="*"/>
                  </policy>
                </busconfig>
                """.write(to: busConfig, atomically: true, encoding: .utf8)
            let bus = try ChildProcess(
                ["dbus-daemon", "--nofork", "--nopidfile", "--nosyslog", "--config-file=\(busConfig.path)", "--print-address=1"], captureStdout: true)
            started.append(bus)
            guard let address = bus.readLine(), !address.isEmpty else { throw TimeoutError(description: "the session dbus-daemon did not start") }
            // dunst, with a rule that records what it was asked to show (the
            // server's own view: app name, urgency, category, summary, body).
            let script = dir.appendingPathComponent("record.sh")
            try """
                #!/bin/sh
                printf 'id=%s\\037app=%s\\037urgency=%s\\037category=%s\\037summary=%s\\037body=%s\\036' \
                  "$DUNST_ID" "$DUNST_APP_NAME" "$DUNST_URGENCY" "$DUNST_CATEGORY" "$DUNST_SUMMARY" "$DUNST_BODY" >> '\(dir.path)/shown.log'
                """.write(to: script, atomically: true, encoding: .utf8)
            _ = chmod(script.path, 0o755)
            let dunstrc = dir.appendingPathComponent("dunstrc")
            try """
                [global]
                    font = DejaVu Sans 11
                    width = 420
                    height = 200
                    origin = top-right
                    offset = 10x10
                    frame_width = 2
                    frame_color = "#8EC07C"
                    background = "#202020"
                    foreground = "#F0F0F0"
                    idle_threshold = 0
                    show_indicators = no
                    markup = full
                [urgency_critical]
                    background = "#303030"
                    foreground = "#FFFFFF"
                    timeout = 0
                [record]
                    appname = "*"
                    script = \(script.path)
                """.write(to: dunstrc, atomically: true, encoding: .utf8)
            var env = ProcessInfo.processInfo.environment
            env["DISPLAY"] = display
            env["DBUS_SESSION_BUS_ADDRESS"] = address
            env["HOME"] = dir.path
            env["XDG_CONFIG_HOME"] = dir.path
            let dunst = try ChildProcess(["dunst", "-config", dunstrc.path], environment: env, stderrPath: dir.appendingPathComponent("dunst.log").path)
            started.append(dunst)
            let desktop = TestDesktop(dir: dir, display: display, address: address, processes: started)
            try await eventually("dunst on the session bus", timeout: .seconds(15)) {
                (try? await desktop.dunstctl(["is-paused"]))?.status == 0
            }
            return desktop
        } catch {
            for p in started.reversed() { p.killNow() }
            try? FileManager.default.removeItem(at: dir)
            throw error
        }
    }

    func dunstctl(_ args: [String]) async throws -> CommandResult {
        try await runCommand(["dunstctl"] + args, environment: ["DBUS_SESSION_BUS_ADDRESS": address])
    }

    /// `dunstctl count displayed`.
    func displayed() async throws -> Int {
        Int(try await dunstctl(["count", "displayed"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// `dunstctl history`: the notifications dunst closed, newest first, as field → text.
    func history() async throws -> [[String: String]] {
        let out = try await dunstctl(["history"]).stdout
        guard let json = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
            let data = json["data"] as? [[Any]], let items = data.first as? [[String: Any]]
        else { return [] }
        return items.map { item in
            var fields: [String: String] = [:]
            for (key, value) in item {
                if let v = (value as? [String: Any])?["data"] { fields[key] = "\(v)" }
            }
            return fields
        }
    }

    /// What dunst's script rule recorded, one map per notification shown (replacements too).
    var shown: [[String: String]] {
        let text = (try? String(contentsOf: dir.appendingPathComponent("shown.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\u{1E}").map { record in
            var fields: [String: String] = [:]
            for field in record.split(separator: "\u{1F}", omittingEmptySubsequences: false) {
                let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                fields[String(parts[0])] = String(parts[1])
            }
            return fields
        }
    }

    /// A screenshot of the whole screen (xwd, parsed here: XWD is a 100-byte
    /// big-endian header, the colour map, then the rows).
    struct Screenshot {
        var width: Int
        var height: Int
        /// Pixels that differ from the most common colour (the background).
        var foreground: Int
        /// Where they are: min x, min y, max x, max y.
        var bounds: (Int, Int, Int, Int)
    }

    func screenshot(name: String) async throws -> Screenshot {
        let file = dir.appendingPathComponent("\(name).xwd")
        let r = try await runCommand(["xwd", "-root", "-silent", "-display", display, "-out", file.path])
        guard r.status == 0 else { throw TimeoutError(description: "xwd failed: \(r.stderr)") }
        let bytes = [UInt8](try Data(contentsOf: file))
        func field(_ i: Int) -> Int {
            let o = i * 4
            guard o + 4 <= bytes.count else { return 0 }
            return Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
        }
        let (headerSize, width, height, bytesPerLine, colours) = (field(0), field(4), field(5), field(12), field(19))
        let start = headerSize + colours * 12
        guard width > 0, height > 0, bytesPerLine >= width, start + bytesPerLine * height <= bytes.count else {
            throw TimeoutError(description: "not an XWD image of the screen: \(bytes.count) bytes, \(width)x\(height)")
        }
        let pixelBytes = bytesPerLine / width
        var counts: [UInt32: Int] = [:]
        func pixel(_ x: Int, _ y: Int) -> UInt32 {
            var v: UInt32 = 0
            let o = start + y * bytesPerLine + x * pixelBytes
            for k in 0..<min(pixelBytes, 3) { v = v << 8 | UInt32(bytes[o + k]) }
            return v
        }
        for y in 0..<height { for x in 0..<width { counts[pixel(x, y), default: 0] += 1 } }
        let background = counts.max { $0.value < $1.value }?.key ?? 0
        var foreground = 0
        var bounds = (width, height, -1, -1)
        for y in 0..<height {
            for x in 0..<width where pixel(x, y) != background {
                foreground += 1
                bounds = (min(bounds.0, x), min(bounds.1, y), max(bounds.2, x), max(bounds.3, y))
            }
        }
        return Screenshot(width: width, height: height, foreground: foreground, bounds: bounds)
    }

    /// Keeps the directory (logs, screenshots) for a failed test.
    func stop(keepFiles: Bool = false) {
        for p in processes.reversed() { p.killNow() }
        processes.removeAll()
        if keepFiles {
            print("desktop files kept in \(dir.path)")
        } else {
            try? FileManager.default.removeItem(at: dir)
        }
    }

    deinit { for p in processes.reversed() { p.killNow() } }
}

/// The desktop, icws-bridged on its private bus with icws-sim, and the
/// notifier between them; `run` stops every process on every path.
final class NotifierRig: @unchecked Sendable {
    // Unchecked: used by one test task at a time.
    let desktop: TestDesktop
    let rig: DaemonRig
    var notifier: ChildProcess?
    var logPath: String { rig.dir.appendingPathComponent("notify.log").path }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private init(desktop: TestDesktop, rig: DaemonRig) {
        self.desktop = desktop
        self.rig = rig
    }

    static func run(_ body: (NotifierRig) async throws -> Void) async throws {
        let desktop = try await TestDesktop.start()
        let rig: DaemonRig
        do { rig = try await DaemonRig.start() } catch {
            desktop.stop()
            throw error
        }
        let r = NotifierRig(desktop: desktop, rig: rig)
        do {
            try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
            try await eventually("queue subscribed") {
                rig.sim.requests.contains { $0.method == "PUT" && $0.path.hasSuffix("/messaging/subscriptions/queues/icws-bridge-my-interactions") }
            }
            try await body(r)
        } catch {
            print("icws-bridge-notify's log:\n\(r.log)\nicws-bridged's log (end):\n\(rig.log.suffix(4000))")
            r.notifier?.killNow()
            desktop.stop(keepFiles: true)
            await rig.stop()
            throw error
        }
        r.notifier?.killNow()
        desktop.stop()
        await rig.stop()
    }

    /// Starts icws-bridge-notify on the two buses (no session bus or display from the environment).
    func startNotifier() throws -> ChildProcess {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DBUS_SESSION_BUS_ADDRESS")
        env.removeValue(forKey: "DISPLAY")
        let p = try ChildProcess(
            [binary("icws-bridge-notify"), "--bus", rig.bus.address, "--notifications-bus", desktop.address, "--log-level", "debug"],
            environment: env, stderrPath: logPath)
        notifier = p
        return p
    }

    func ringing(_ path: String) async -> Bool {
        (try? await rig.bus.busctl(["get-property", BridgeNames.busName, path, BridgeNames.interaction, "State"]))?.stdout.contains("u 2") == true
    }
}

/// icws-bridge-notify against a real notification server (dunst under Xvfb),
/// the real daemon on a private bus, and icws-sim ringing the calls.
@Suite(.serialized, .timeLimit(.minutes(3))) struct NotifierDesktopTests {
    static let toolsPresent = TestDesktop.missingTools.isEmpty

    @Test(.enabled(if: toolsPresent, "needs Xvfb, dunst, dunstctl, xwd (Debian: xvfb dunst x11-apps) and dbus-daemon, gdbus"))
    func aRingingCallIsShownAnsweredFromTheNotificationAndClosed() async throws {
        try await NotifierRig.run { r in
            let (desktop, rig) = (r.desktop, r.rig)
            let process = try r.startNotifier()
            try await eventually("the notifier follows the bridge and the server") {
                r.log.contains("following icws-bridged") && r.log.contains("notification server found")
            }

            // A call rings: one notification, with what the server was given read back from it.
            let id = rig.sim.startCall(name: "ACME Corp", address: "+13175550100")
            try await eventually("shown by dunst") { desktop.shown.contains { $0["summary"] == "Call from ACME Corp" } }
            #expect(try await desktop.displayed() == 1)
            // The queue arrives later (a delta): the same notification says it, replaced in place.
            _ = rig.sim.emit([
                "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": "icws-bridge-my-interactions",
                "interactionsChanged": [["interactionId": .string(id), "attributes": ["Eic_WorkgroupName": "Support"]]],
            ])
            try await eventually("the queue in the body") { desktop.shown.contains { $0["body"] == "+13175550100 · Support" } }
            let record = try #require(desktop.shown.last)
            #expect(record["app"] == "icws-bridge" && record["urgency"] == "CRITICAL" && record["category"] == "x-gnome.call", "\(record)")
            #expect(record["summary"] == "Call from ACME Corp")
            #expect(Set(desktop.shown.compactMap { $0["id"] }).count == 1, "replaced, not a second one: \(desktop.shown)")
            #expect(try await desktop.displayed() == 1)

            // It is on the screen: the screenshot has the screen's size, and the
            // pixels that are not background form one notification-sized box at the top.
            let shot = try await desktop.screenshot(name: "ringing")
            #expect(shot.width == TestDesktop.width && shot.height == TestDesktop.height)
            #expect(shot.foreground > 2000, "a notification's worth of pixels: \(shot.foreground)")
            let (x0, y0, x1, y1) = shot.bounds
            #expect(y0 < 40 && y1 < TestDesktop.height / 2 && x1 - x0 + 1 <= 440 && x1 - x0 > 100, "one box at the top: \(shot.bounds)")

            // Its default action (what a click does): the server is asked to pick up.
            let action = try await desktop.dunstctl(["action", "0"])
            #expect(action.status == 0, "\(action.stderr)")
            try await eventually("pickup reached icws-sim") { rig.sim.actionRequests.contains { $0.id == id && $0.action == "pickup" } }
            try await eventually("connected at the server") { rig.sim.interaction(id)?["Eic_State"] == "C" }
            // Connected: not ringing any more, so the notification is closed, and
            // dunst's history has it with its text.
            try await eventually("closed") { try await desktop.displayed() == 0 }
            let history = try await desktop.history()
            #expect(
                history.contains { $0["summary"] == "Call from ACME Corp" && $0["body"] == "+13175550100 · Support" && $0["appname"] == "icws-bridge" },
                "\(history)")
            #expect(rig.sim.actionRequests.filter { $0.id == id }.map(\.action) == ["pickup"], "one pickup, nothing else")
            let empty = try await desktop.screenshot(name: "answered")
            #expect(empty.foreground == 0, "nothing left on the screen: \(empty.foreground) pixels at \(empty.bounds)")
            #expect(process.poll() == nil, "still running")
            await process.stop()
            #expect(process.poll() == 0, "SIGTERM ends it cleanly")
            // Its log (debug level) names ids, never what the server said, nor the password.
            #expect(!r.log.contains("ACME") && !r.log.contains("+13175550100") && !r.log.contains("secret"), "\(r.log)")
        }
    }

    @Test(.enabled(if: toolsPresent, "needs Xvfb, dunst, dunstctl, xwd (Debian: xvfb dunst x11-apps) and dbus-daemon, gdbus"))
    func doNotDisturbIsSilentAndForgedActionsAreIgnored() async throws {
        try await NotifierRig.run { r in
            let (desktop, rig) = (r.desktop, r.rig)
            rig.sim.setUserStatus("Do Not Disturb")
            try await eventually("Do Not Disturb") { try await rig.property(BridgeNames.status, "IsDoNotDisturb") == "b true" }
            // A call that rings before the notifier starts is learnt from GetManagedObjects.
            let early = rig.sim.startCall(name: "Early Bird", address: "+15550001")
            let earlyPath = try #require(BridgeNames.interactionPath(early))
            try await eventually("early call on the bus") { await r.ringing(earlyPath) }
            let process = try r.startNotifier()
            try await eventually("following, in Do Not Disturb") { r.log.contains("following icws-bridged") && r.log.contains("do_not_disturb=true") }
            let late = rig.sim.startCall(name: "Late Caller", address: "+15550002")
            let latePath = try #require(BridgeNames.interactionPath(late))
            try await eventually("late call on the bus") { await r.ringing(latePath) }
            try await Task.sleep(for: .milliseconds(700))
            #expect(desktop.shown.isEmpty, "silent while Do Not Disturb: \(desktop.shown)")
            #expect(try await desktop.displayed() == 0)

            // Do Not Disturb ends: both calls still ring, both are shown, the older first.
            rig.sim.setUserStatus("Available")
            try await eventually("both shown") { try await desktop.displayed() == 2 }
            #expect(desktop.shown.compactMap { $0["summary"] } == ["Call from Early Bird", "Call from Late Caller"], "\(desktop.shown)")

            // Another peer on the session bus sends the notifier an ActionInvoked
            // as if from dunst: only the notification server's own signals count.
            let lateId = try #require(desktop.shown.last?["id"])
            let names = try await runCommand(["busctl", "--address=\(desktop.address)", "--json=short", "list"])
            let peers = (try? JSONSerialization.jsonObject(with: Data(names.stdout.utf8)) as? [[String: Any]]) ?? []
            let unique = try #require(
                peers.first { ($0["pid"] as? Int) == Int(process.pid) && ($0["name"] as? String)?.hasPrefix(":") == true }?["name"] as? String,
                "\(names.stdout)")
            let forged = try await runCommand([
                "gdbus", "emit", "--address", desktop.address, "--dest", unique, "--object-path", "/org/freedesktop/Notifications",
                "--signal", "org.freedesktop.Notifications.ActionInvoked", "uint32 \(lateId)", "'decline'",
            ])
            #expect(forged.status == 0, "\(forged.stderr)")
            try await Task.sleep(for: .milliseconds(700))
            #expect(rig.sim.actionRequests.isEmpty, "a forged action calls nothing: \(rig.sim.actionRequests.map(\.action))")

            // The caller hangs up: its notification goes; the other stays.
            rig.sim.remoteHangup(late)
            try await eventually("the hung-up call's notification closed") { try await desktop.displayed() == 1 }
            // Do Not Disturb again closes what is shown.
            rig.sim.setUserStatus("Do Not Disturb")
            try await eventually("closed for Do Not Disturb") { try await desktop.displayed() == 0 }
            #expect(process.poll() == nil, "still running")
        }
    }
}

/// The notifier's command line and its exits, without a desktop.
@Suite(.serialized, .timeLimit(.minutes(1))) struct NotifierCommandLineTests {
    @Test func badOptionsAndLostBusesExitClearly() async throws {
        let notifier = binary("icws-bridge-notify")
        let version = try await runCommand([notifier, "--version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("icws-bridge-notify "))
        let help = try await runCommand([notifier, "--help"])
        #expect(help.status == 0 && help.stdout.contains("--notifications-bus") && help.stdout.contains("systemctl --user enable --now icws-bridge-notify"))
        let level = try await runCommand([notifier, "--log-level", "loud"])
        #expect(level.status == 64 && level.stderr.contains("--log-level must be one of"), "\(level.status) \(level.stderr)")
        let nowhere = try await runCommand([notifier, "--bus", "unix:path=/nonexistent/icws-bus", "--notifications-bus", "unix:path=/nonexistent/x"])
        #expect(nowhere.status == 69 && nowhere.stderr.contains("cannot connect to icws-bridged's bus (unix:path=/nonexistent/icws-bus)"), "\(nowhere.stderr)")

        // Both buses there, neither the bridge nor a notification server: it waits (asleep).
        let bus = try PrivateBus()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notify-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let logPath = dir.appendingPathComponent("notify.log").path
        let p = try ChildProcess([notifier, "--bus", bus.address, "--notifications-bus", bus.address], stderrPath: logPath)
        defer { p.killNow() }
        let log: @Sendable () -> String = { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        try await eventually("waiting for both") {
            log().contains("icws-bridged is not on the") && log().contains("no notification server (org.freedesktop.Notifications)")
        }
        #expect(p.poll() == nil)
        // The bus goes away: exit 69 with the reason (the unit restarts it).
        bus.stop()
        let status = await p.wait(timeout: .seconds(10))
        #expect(status == 69, "\(String(describing: status)) \(log())")
        #expect(log().contains("lost the connection to"), "\(log())")
    }
}
