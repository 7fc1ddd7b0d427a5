import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSSimulator
import Testing
import TestSupport

/// Contract v1.1's Status interface, subscription health and the wake-up
/// rule, through the real daemon on a real dbus-daemon. logind and
/// NetworkManager are python-dbusmock's templates on a private system bus.
@Suite(.serialized, .timeLimit(.minutes(3))) struct StatusAndWakeTests {
    func gdbus(_ rig: DaemonRig, _ method: String, _ args: [String]) async throws -> CommandResult {
        try await runCommand(["gdbus", "call", "--address", rig.bus.address, "--dest", BridgeNames.busName, "--object-path", BridgeNames.objectPath, "--method", method] + args)
    }

    func status(_ rig: DaemonRig, _ name: String) async throws -> String {
        try await rig.property(BridgeNames.status, name)
    }

    func connected(_ rig: DaemonRig) async throws {
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        try await eventually("status known") { try await status(rig, "StatusId") != "s \"\"" }
    }

    @Test func theStatusRoundTripWithEveryFault() async throws {
        let rig = try await DaemonRig.start(config: "request-timeout = 1s")
        try await connected(rig)
        // The access list comes with its own subscription, after the status: wait for it.
        try await eventually("selectable") { try await status(rig, "Selectable").contains("Do Not Disturb") }
        let selectable = try await rig.bus.busctl(["--json=short", "get-property", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.status, "Selectable"])
        #expect(selectable.stdout.contains("Do Not Disturb") && !selectable.stdout.contains("Gone Home"), "access list applied: \(selectable.stdout.prefix(300))")
        #expect(!selectable.stdout.contains("ACD - Agent Not Answering"), "not selectable statuses are left out")
        // Case-insensitive, sent in the server's spelling; the reply comes after the completion.
        let set = try await gdbus(rig, "\(BridgeNames.status).SetStatus", ["'do not disturb'", "{'notes': <'in a meeting'>}"])
        #expect(set.status == 0, "\(set.stderr)")
        #expect(rig.sim.userStatus() == "Do Not Disturb", "the server has it when the call returns")
        let put = try #require(rig.sim.requests.last { $0.method == "PUT" && $0.path.contains("/status/user-statuses/") })
        #expect(put.body?["statusId"]?.stringValue == "Do Not Disturb" && put.body?["notes"]?.stringValue == "in a meeting")
        try await eventually("properties") { try await status(rig, "IsDoNotDisturb") == "b true" }
        #expect(try await status(rig, "Notes") == "s \"in a meeting\"")
        #expect(try await status(rig, "Changed") != "x 0")
        // Not selectable, unknown option: InvalidArgs, nothing sent.
        let before = rig.sim.requests.count
        for args in [["'Gone Home'", "{}"], ["'Available'", "{'colour': <'red'>}"], ["'Available'", "{'notes': <7>}"]] {
            let r = try await gdbus(rig, "\(BridgeNames.status).SetStatus", args)
            #expect(r.status != 0 && r.stderr.contains("org.freedesktop.DBus.Error.InvalidArgs"), "\(args): \(r.stderr)")
        }
        #expect(rig.sim.requests.count == before)
        // A completion that carries an error.
        rig.sim.inject(.statusCompletionError)
        let refused = try await gdbus(rig, "\(BridgeNames.status).SetStatus", ["'At Lunch'", "{}"])
        #expect(refused.status != 0 && refused.stderr.contains("io.github.icwsbridge.Bridge1.Error.ServerError") && refused.stderr.contains("status change refused"), "\(refused.stderr)")
        // No completion at all: Timeout after request-timeout.
        rig.sim.inject(.statusNoCompletion)
        let started = ContinuousClock.now
        let timedOut = try await gdbus(rig, "\(BridgeNames.status).SetStatus", ["'At Lunch'", "{}"])
        #expect(timedOut.status != 0 && timedOut.stderr.contains("io.github.icwsbridge.Bridge1.Error.Timeout"), "\(timedOut.stderr)")
        #expect(ContinuousClock.now - started < .seconds(5))
        // A 2xx without a requestId replies at once.
        rig.sim.inject(.statusImmediate)
        let immediate = try await gdbus(rig, "\(BridgeNames.status).SetStatus", ["'available'", "{}"])
        #expect(immediate.status == 0, "\(immediate.stderr)")
        // A change the server makes by itself (the ACD's after-call work).
        rig.sim.setUserStatus("Follow Up")
        try await eventually("after-call work") { try await status(rig, "IsAfterCallWork") == "b true" }
        #expect(try await status(rig, "StatusId") == "s \"Follow Up\"")
        // icws-bridgectl.
        let statuses = try await rig.ctl(["statuses"])
        #expect(statuses.status == 0 && statuses.stdout.contains("* Follow Up"), "\(statuses.stdout)")
        let ctlSet = try await rig.ctl(["set-status", "at lunch", "--notes", "back at 2"])
        #expect(ctlSet.status == 0 && rig.sim.userStatus() == "At Lunch", "\(ctlSet.stderr)")
        let shown = try await rig.ctl(["status"])
        #expect(shown.stdout.contains("Status:") && shown.stdout.contains("back at 2"), "\(shown.stdout)")
        await rig.stop()
    }

    @Test func aFaultedSubscriptionIsMadeAgainAndShown() async throws {
        let rig = try await DaemonRig.start(config: "backoff-initial = 100ms")
        try await connected(rig)
        let features = try await rig.property(BridgeNames.session, "Features")
        #expect(features.contains("\"messaging\" 2"), "\(features)")
        try await eventually("all normal") { try await rig.property(BridgeNames.session, "Subscriptions").contains("\"user-status\" 1") }
        let puts: @Sendable () -> Int = { rig.sim.requests.filter { $0.method == "PUT" && $0.path.hasSuffix("/messaging/subscriptions/status/status-messages") }.count }
        let before = puts()
        rig.sim.inject(.subscriptionFaulted(subscriptionPathSuffix: "status/status-messages"))
        try await eventually("made again") { puts() > before }
        try await eventually("normal again") { try await rig.property(BridgeNames.session, "Subscriptions").contains("\"status-messages\" 1") }
        #expect(try await rig.property(BridgeNames.session, "State") == "u 2", "the session went on")
        // The queue subscription too (its own state message).
        let queuePuts: @Sendable () -> Int = { rig.sim.requests.filter { $0.method == "PUT" && $0.path.hasSuffix("/queues/icws-bridge-my-interactions") }.count }
        let queueBefore = queuePuts()
        rig.sim.inject(.queueFaulted)
        try await eventually("queue made again") { queuePuts() > queueBefore }
        await rig.stop()
    }

    /// A suspend kills the stream silently (no FIN, no bytes); after the
    /// wake-up the phone rings again within a second, long before stall-timeout.
    @Test(arguments: ["logind", "networkmanager"]) func aWakeUpBringsTheStreamBackAtOnce(template: String) async throws {
        let system = try PrivateBus(includeShippedPolicy: false)
        defer { system.stop() }
        let mock = try ChildProcess(
            ["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", template],
            environment: ProcessInfo.processInfo.environment.merging(["DBUS_SYSTEM_BUS_ADDRESS": system.address]) { $1 })
        defer { mock.killNow() }
        let (name, path) = template == "logind" ? ("org.freedesktop.login1", "/org/freedesktop/login1") : ("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager")
        try await eventually("mock up") {
            let r = try await system.busctl(["status", name])
            return r.status == 0
        }
        // The rig's stall-timeout is 3 s: a wake-up must beat it by far.
        let rig = try await DaemonRig.start(environment: ["DBUS_SYSTEM_BUS_ADDRESS": system.address])
        do {
            try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        } catch {
            Issue.record("daemon log: \(rig.log.suffix(3000))")
            throw error
        }
        try await eventually("stream open") { rig.sim.openStreamCount == 1 }
        try await Task.sleep(for: .milliseconds(300))
        let recorder = try await SignalRecorder(address: rig.bus.address)
        @Sendable func rang(_ id: String) -> Bool {
            recorder.members("InteractionAlerting").contains { s in (s.arguments.first?.arrayElements ?? []).contains { $0["interactionId"] == .string(id) } }
        }
        // The laptop sleeps: the stream goes silent; a call rings meanwhile.
        rig.sim.inject(.silentStreams)
        let id = rig.sim.startAlerting()
        try await Task.sleep(for: .milliseconds(500))
        #expect(!rang(id), "nothing arrives on the dead stream")
        let woke = ContinuousClock.now
        let emit: CommandResult
        if template == "logind" {
            emit = try await runCommand([
                "gdbus", "call", "--address", system.address, "--dest", name, "--object-path", path, "--method", "org.freedesktop.DBus.Mock.EmitSignal",
                "org.freedesktop.login1.Manager", "PrepareForSleep", "b", "[<false>]",
            ])
        } else {
            emit = try await runCommand([
                "gdbus", "call", "--address", system.address, "--dest", name, "--object-path", path, "--method", "org.freedesktop.DBus.Mock.EmitSignal",
                "org.freedesktop.NetworkManager", "StateChanged", "u", "[<uint32 70>]",
            ])
        }
        #expect(emit.status == 0, "\(emit.stderr)")
        // The alert that rang during the suspend comes with the new stream.
        try await eventually("ringing again", timeout: .seconds(5)) { rang(id) }
        let took = ContinuousClock.now - woke
        #expect(took < .seconds(1.5), "back \(took) after the wake-up (stall-timeout is 3 s)")
        #expect(rig.log.contains(template == "logind" ? "resumed from suspend" : "the network is connected again"))
        recorder.close()
        rig.sim.inject(.clear)
        await rig.stop()
    }

    /// effectiveStationChangeMessage: the station is read anew and its
    /// properties refreshed; a change to none disconnects it.
    @Test func anEffectiveStationChangeRefreshesTheStation() async throws {
        let rig = try await DaemonRig.start()
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        let connect = try await rig.bus.busctl(["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.station, "Connect", "a{sv}", "2", "type", "s", "workstation", "workstation", "s", "7002"])
        #expect(connect.status == 0, "\(connect.stderr)")
        let before = rig.sim.requests.filter { $0.method == "GET" && $0.path.hasSuffix("/connection/station") }.count
        rig.sim.changeEffectiveStation()
        try await eventually("station read anew") {
            rig.sim.requests.filter { $0.method == "GET" && $0.path.hasSuffix("/connection/station") }.count > before
        }
        try await eventually("Info") { try await rig.property(BridgeNames.station, "Info").contains("7002") }
        #expect(try await rig.property(BridgeNames.station, "Connected") == "b true")
        await rig.stop()
    }

    /// Where neither logind nor NetworkManager can be asked (no system bus),
    /// an rtnetlink address change wakes the daemon.
    @Test func anAddressChangeWakesTheDaemonWithoutASystemBus() async throws {
        try #require(isRoot, "adding an address to lo needs root")
        let rig = try await DaemonRig.start(environment: ["DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bus"])
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        try await eventually("stream open") { rig.sim.openStreamCount == 1 }
        let recorder = try await SignalRecorder(address: rig.bus.address)
        rig.sim.inject(.silentStreams)
        let id = rig.sim.startAlerting()
        try await Task.sleep(for: .milliseconds(300))
        let address = "127.0.0.77/32"
        _ = try? await runCommand(["ip", "address", "del", address, "dev", "lo"])
        try await Task.sleep(for: .milliseconds(2200))
        let add = try await runCommand(["ip", "address", "add", address, "dev", "lo"])
        try #require(add.status == 0, "cannot change an address here: \(add.stderr)")
        let woke = ContinuousClock.now
        try await eventually("ringing again", timeout: .seconds(5)) {
            recorder.members("InteractionAlerting").contains { s in (s.arguments.first?.arrayElements ?? []).contains { $0["interactionId"] == .string(id) } }
        }
        #expect(ContinuousClock.now - woke < .seconds(2), "the stall-timeout (3 s) did not do it")
        #expect(rig.log.contains("the network changed"))
        _ = try? await runCommand(["ip", "address", "del", address, "dev", "lo"])
        recorder.close()
        rig.sim.inject(.clear)
        await rig.stop()
    }

    /// Without a system bus the daemon says so once, at info, and runs on.
    @Test func noSystemBusIsSaidOnceNotAnError() async throws {
        let rig = try await DaemonRig.start(environment: ["DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bus"])
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        try await eventually("said") { rig.log.contains("no system bus") }
        #expect(rig.log.components(separatedBy: "no system bus").count == 2, "once")
        #expect(!rig.log.contains("error") || !rig.log.lowercased().contains("system bus: error"))
        await rig.stop()
    }
}
