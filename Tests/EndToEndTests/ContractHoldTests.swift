import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSProtocol
import ICWSSimulator
import Testing
import TestSupport

/// Where the contract slipped: a systemd that does not read the notify
/// socket, server errors without their id, retries that gave up, deltas
/// that erased. Through the real daemon on a real dbus-daemon, with busctl
/// and gdbus as the clients.
@Suite(.serialized, .timeLimit(.minutes(4))) struct ContractHoldTests {
    func gdbus(_ rig: DaemonRig, _ path: String = BridgeNames.objectPath, method: String, _ args: [String]) async throws -> CommandResult {
        try await runCommand(["gdbus", "call", "--address", rig.bus.address, "--dest", BridgeNames.busName, "--object-path", path, "--method", method] + args)
    }

    /// systemd busy for 60 s (the notify socket full and not read): the daemon
    /// keeps answering on the bus, keeps its session, and once the socket is
    /// read again sends READY=1, its latest STATUS= and a watchdog ping.
    @Test func aNotifySocketNobodyReadsFreezesNothing() async throws {
        let rig = try await DaemonRig.start(config: "station-type = workstation\nstation-workstation = 7001\nstation-ready = yes", watchdogUsec: 400_000)
        rig.notify.pause(true)
        let filled = rig.notify.fill()
        #expect(filled > 0, "the test filled the socket's queue")
        try await eventually("connected while systemd does not read") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        var worst: Duration = .zero
        var calls = 0
        let until = ContinuousClock.now + .seconds(60)
        var ready = true
        while ContinuousClock.now < until {
            let started = ContinuousClock.now
            let state = try await rig.bus.busctl(["get-property", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.session, "State"])
            worst = max(worst, ContinuousClock.now - started)
            calls += 1
            #expect(state.status == 0 && state.stdout.contains("u 2"), "\(state.stderr)")
            if calls % 25 == 0 {
                // Method calls that change STATUS= while it cannot be sent.
                ready.toggle()
                let r = try await gdbus(rig, method: "\(BridgeNames.station).SetReady", [ready ? "true" : "false"])
                #expect(r.status == 0, "\(r.stderr)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        // busctl's own start is in it; a frozen daemon would take busctl's 25 s timeout.
        print("ContractHoldTests: \(calls) property reads while the notify socket was not read; slowest \(worst)")
        #expect(worst < .seconds(2), "slowest answer \(worst)")
        #expect(rig.daemon.poll() == nil, "the daemon runs")
        #expect(rig.notify.count("READY=1") == 0, "nothing was read yet")
        rig.notify.pause(false)
        try await eventually("READY=1 once read") { rig.notify.count("READY=1") == 1 }
        let wanted = "station 7001 \(ready ? "ready" : "not ready")"
        try await eventually("the latest status") { rig.notify.statuses().last?.contains(wanted) == true }
        let pings = rig.notify.count("WATCHDOG=1")
        try await eventually("watchdog pings go on") { rig.notify.count("WATCHDOG=1") > pings }
        // What waited was coalesced, not queued message by message.
        #expect(rig.notify.all.filter { !$0.contains("FILLER") }.count < 40, "\(rig.notify.all.count) messages")
        await rig.stop()
    }

    /// A log nobody reads (journald stalled, or stderr a pipe that is full):
    /// the daemon keeps answering and working, and once the log is read again
    /// its lines go on.
    @Test func aLogNobodyReadsFreezesNothing() async throws {
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString.prefix(8))").path
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        // A reader that never reads: the pipe (64 KiB) fills with the daemon's debug lines.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        let rig = try await DaemonRig.start(config: "station-type = workstation\nstation-workstation = 7001", logLevel: "trace", stderrPath: fifo)
        try await eventually("connected while the log is not read") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        var worst: Duration = .zero
        for i in 0..<60 {
            // Traffic that logs (at trace every message is a line or more).
            _ = rig.sim.startAlerting()
            rig.sim.stopAlerting()
            let started = ContinuousClock.now
            let r = try await gdbus(rig, method: "\(BridgeNames.station).SetReady", [i % 2 == 0 ? "true" : "false"])
            worst = max(worst, ContinuousClock.now - started)
            #expect(r.status == 0, "\(r.stderr)")
            try await Task.sleep(for: .milliseconds(100))
        }
        print("ContractHoldTests: 60 SetReady calls while stderr was not read; slowest \(worst)")
        #expect(worst < .seconds(2), "slowest answer \(worst)")
        // Read what waits: the log goes on, and says how much it dropped if it did.
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, !text.contains("[ICWS]") || !text.hasSuffix("\n") {
            let n = read(reader, &buffer, buffer.count)
            if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self) } else { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(text.contains("icws-bridged"), "the log goes on once read: \(text.suffix(300))")
        #expect(rig.daemon.poll() == nil)
        await rig.stop()
    }

    /// Every path to a server error names the server's errorId and message:
    /// an async completion, HTTP 500 and 404 on interaction calls, 500 on the
    /// station, a non-JSON body, a completion whose `error` is not an object.
    @Test func serverErrorsCarryTheServersIdAndMessage() async throws {
        let rig = try await DaemonRig.start(config: "station-type = workstation\nstation-workstation = 7001\nrequest-timeout = 2s")
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        try await eventually("selectable") { try await rig.property(BridgeNames.status, "Selectable").contains("At Lunch") }

        rig.sim.inject(.statusCompletionError)
        let refused = try await gdbus(rig, method: "\(BridgeNames.status).SetStatus", ["'At Lunch'", "{}"])
        #expect(refused.stderr.contains("Error.ServerError") && refused.stderr.contains("error.status.sim") && refused.stderr.contains("status change refused"), "\(refused.stderr)")

        rig.sim.inject(.statusCompletionErrorValue(.bool(true)))
        let oddError = try await gdbus(rig, method: "\(BridgeNames.status).SetStatus", ["'At Lunch'", "{}"])
        #expect(oddError.status != 0 && oddError.stderr.contains("Error.ServerError"), "an error that is not an object is still an error: \(oddError.stderr)")

        rig.sim.inject(.failRequests(method: "PUT", pathContains: "connection/station", status: 500, count: 1, body: .icws(errorId: "error.server.internal", message: "station store down")))
        let station = try await gdbus(rig, method: "\(BridgeNames.station).Connect", ["{'type': <'workstation'>, 'workstation': <'7001'>}"])
        #expect(station.stderr.contains("Error.ServerError") && station.stderr.contains("HTTP 500 error.server.internal: station store down"), "\(station.stderr)")

        rig.sim.inject(.failRequests(method: "PUT", pathContains: "connection/station", status: 503, count: 1, body: .text("<html>busy</html>")))
        let bare = try await gdbus(rig, method: "\(BridgeNames.station).Connect", ["{'type': <'workstation'>, 'workstation': <'7001'>}"])
        #expect(bare.stderr.contains("Error.ServerError") && bare.stderr.contains("HTTP 503") && bare.stderr.contains("no ICWS error in the body"), "\(bare.stderr)")

        let id = rig.sim.startCall()
        let path = try #require(BridgeNames.interactionPath(id))
        try await eventually("interaction object") { try await rig.bus.busctl(["introspect", BridgeNames.busName, path]).status == 0 }
        rig.sim.inject(.failRequests(method: "POST", pathContains: "/hold", status: 500, count: 1, body: .icws(errorId: "error.interaction.hold", message: "cannot hold")))
        let hold = try await gdbus(rig, path, method: "\(BridgeNames.interaction).Hold", ["true"])
        #expect(hold.stderr.contains("Error.ServerError") && hold.stderr.contains("error.interaction.hold: cannot hold"), "\(hold.stderr)")
        rig.sim.inject(.failRequests(method: "POST", pathContains: "/pickup", status: 404, count: 1, body: .icws(errorId: "error.request.notFound", message: "no such interaction")))
        let gone = try await gdbus(rig, path, method: "\(BridgeNames.interaction).Pickup", [])
        #expect(gone.stderr.contains("Error.NoSuchInteraction") && gone.stderr.contains("error.request.notFound"), "\(gone.stderr)")
        rig.sim.inject(.failRequests(method: "POST", pathContains: "/pickup", status: 403, count: 1, body: .icws(errorId: "error.request.accessDenied", message: "no right")))
        let forbidden = try await gdbus(rig, path, method: "\(BridgeNames.interaction).Pickup", [])
        #expect(forbidden.stderr.contains("Error.Forbidden") && forbidden.stderr.contains("error.request.accessDenied: no right"), "\(forbidden.stderr)")
        #expect(rig.daemon.poll() == nil)
        await rig.stop()
    }

    /// A faulted subscription whose re-making fails with 500 three times is
    /// made again until it is back (the reported defect: one 500 and it
    /// stayed faulted for the session); so is a station whose restore fails.
    @Test func retriesGoOnUntilTheySucceed() async throws {
        let rig = try await DaemonRig.start(
            config: "station-type = workstation\nstation-workstation = 7001\nstation-ready = yes\nbackoff-initial = 200ms\nbackoff-cap = 1s")
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        try await eventually("interactions subscribed") { try await rig.property(BridgeNames.session, "Subscriptions").contains("\"interactions\" 1") }
        rig.sim.inject(.failRequests(method: "PUT", pathContains: "messaging/subscriptions/queues", status: 500, count: 3, body: .icws(errorId: "error.server.internal", message: "queue store down")))
        rig.sim.inject(.queueFaulted)
        try await eventually("faulted shown") { try await rig.property(BridgeNames.session, "Subscriptions").contains("\"interactions\" 3") }
        try await eventually("made again after three failures", timeout: .seconds(30)) {
            try await rig.property(BridgeNames.session, "Subscriptions").contains("\"interactions\" 1")
        }
        let puts = rig.sim.requests.filter { $0.method == "PUT" && $0.path.contains("messaging/subscriptions/queues") }
        #expect(puts.filter { $0.status == 500 }.count == 3 && puts.last?.status == 200, "\(puts.map(\.status))")
        // A call still reaches the new subscription.
        let id = rig.sim.startCall()
        let path = try #require(BridgeNames.interactionPath(id))
        try await eventually("interaction object after the retries") { try await rig.bus.busctl(["introspect", BridgeNames.busName, path]).status == 0 }

        // The station restore after a new session fails twice, then is back.
        rig.sim.inject(.failRequests(method: "PUT", pathContains: "connection/station", status: 500, count: 2, body: .icws(errorId: "error.server.internal", message: "station store down")))
        rig.sim.inject(.expire(challenge: true, location: nil))
        try await eventually("station restored after two failures", timeout: .seconds(30)) {
            let failed = rig.sim.requests.filter { $0.method == "PUT" && $0.path.hasSuffix("connection/station") && $0.status == 500 }.count
            let connected = try await rig.property(BridgeNames.station, "Connected")
            return failed == 2 && connected == "b true"
        }
        #expect(try await rig.property(BridgeNames.station, "Ready") == "b true")
        await rig.stop()
    }

    /// A status delta that carries a new statusId but no loggedIn keeps
    /// LoggedIn (the reported defect), and a station delta naming only
    /// ringAlways keeps the station connected and its id.
    @Test func deltasChangeOnlyWhatTheyName() async throws {
        let rig = try await DaemonRig.start(config: "station-type = workstation\nstation-workstation = 7001")
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        try await eventually("status known") { try await rig.property(BridgeNames.status, "LoggedIn") == "b true" }
        try await eventually("station") { try await rig.property(BridgeNames.station, "Connected") == "b true" }
        try await eventually("station info") { try await rig.property(BridgeNames.station, "Info").contains("7001") }
        _ = rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.userStatus), "isDelta": true,
            "userStatusList": [["userId": "agent", "statusId": "At Lunch"]],
        ])
        try await eventually("the new status") { try await rig.property(BridgeNames.status, "StatusId") == "s \"At Lunch\"" }
        #expect(try await rig.property(BridgeNames.status, "LoggedIn") == "b true")
        _ = rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.stationConnectionStateChange), "isDelta": true,
            "newStationInfo": ["ringAlways": true],
        ])
        try await eventually("ringAlways merged") { try await rig.property(BridgeNames.station, "Info").contains("ringAlways") }
        #expect(try await rig.property(BridgeNames.station, "Info").contains("7001"))
        #expect(try await rig.property(BridgeNames.station, "Connected") == "b true")
        await rig.stop()
    }
}
