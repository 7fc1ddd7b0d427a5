import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSProtocol
import ICWSSimulator
import Testing
import TestSupport

/// Contract v1.2's workgroup objects and wrap-up codes through the real
/// daemon on a real dbus-daemon, read with busctl and gdbus, against
/// icws-sim's workgroups (Sales: codes and after-call work; Support: none).
@Suite(.serialized, .timeLimit(.minutes(3))) struct WorkgroupTests {
    let w = BridgeNames.workgroup

    func startRig(_ extra: String = "", simulator: ((inout SimulatorConfiguration) -> Void)? = nil) async throws -> (DaemonRig, SignalRecorder) {
        let rig = try await DaemonRig.start(config: extra, configure: simulator ?? { _ in })
        let recorder = try await SignalRecorder(address: rig.bus.address)
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        return (rig, recorder)
    }

    func get(_ rig: DaemonRig, _ path: String, _ name: String, interface: String? = nil) async throws -> String {
        try await rig.bus.busctl(["get-property", BridgeNames.busName, path, interface ?? w, name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func gdbus(_ rig: DaemonRig, _ path: String, _ method: String, _ args: [String] = []) async throws -> CommandResult {
        try await runCommand(["gdbus", "call", "--address", rig.bus.address, "--dest", BridgeNames.busName, "--object-path", path, "--method", method] + args)
    }

    func statistics(_ rig: DaemonRig, _ path: String) async throws -> String { try await get(rig, path, "Statistics") }

    var sales: String { BridgeNames.workgroupPath("Sales") ?? "" }
    var support: String { BridgeNames.workgroupPath("Support") ?? "" }

    @Test func workgroupsWithCodesActivationAndFigures() async throws {
        let (rig, recorder) = try await startRig()
        try await eventually("both objects") {
            let added = Set(recorder.members("InterfacesAdded").compactMap { $0.arguments.first?.stringValue })
            return added.contains(sales) && added.contains(support)
        }
        let managed = try await rig.bus.busctl(["call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.objectManager, "GetManagedObjects"])
        #expect(managed.stdout.contains(sales) && managed.stdout.contains("Sales Team"), "\(managed.stdout)")
        #expect(try await get(rig, sales, "Name") == "s \"Sales Team\"")
        #expect(try await get(rig, support, "Name") == "s \"Support\"", "no displayName: the id")
        #expect(try await get(rig, sales, "WrapUpCodes") == "a(ss) 3 \"Sale\" \"Sale made\" \"NoSale\" \"No sale\" \"Callback\" \"Callback\"")
        #expect(try await get(rig, support, "WrapUpCodes") == "a(ss) 0", "wrap-up not active")
        #expect(try await get(rig, sales, "WrapUpTimeout") == "u 3")
        #expect(try await get(rig, sales, "Activated") == "b true")
        // The units: in Session.Subscriptions, with the wire of each.
        try await eventually("units normal") {
            let subs = try await rig.property(BridgeNames.session, "Subscriptions")
            return subs.contains("\"workgroups\" 1") && subs.contains("\"statistics\" 1")
        }
        let activation = try #require(rig.sim.requests.last { $0.method == "PUT" && $0.path.contains("/messaging/subscriptions/activations/users/") })
        #expect(activation.body == .object([("userId", .string("agent")), ("workgroupIds", .array([.string("*")]))]))
        let stats = try #require(rig.sim.requests.last { $0.method == "PUT" && $0.path.hasSuffix("/messaging/subscriptions/statistics/statistic-values") })
        let keys = stats.body?["statisticKeys"]?.arrayValue ?? []
        #expect(keys.count == 14, "7 keys for each of 2 workgroups")
        #expect(keys.first?["parameterValueItems"]?.arrayValue?.first?["parameterTypeId"]?.stringValue == "ININ.People.WorkgroupStats:Workgroup")
        let answered = keys.first { $0["statisticIdentifier"]?.stringValue == "inin.workgroup:InteractionsAnswered" }
        #expect(answered?["parameterValueItems"]?.arrayValue?.map { $0["parameterTypeId"]?.stringValue ?? "" } == ["ININ.People.WorkgroupStats:Workgroup", "ININ.Queue:Interval"])
        // Figures: nobody waiting (LongestWaitSince absent: the value is null).
        try await eventually("figures") { try await statistics(rig, sales).contains("\"InteractionsWaiting\" u 0") }
        #expect(!(try await statistics(rig, sales)).contains("LongestWaitSince"))
        #expect(try await statistics(rig, sales).contains("\"PercentAvailable\" d 60"))
        // A caller queues: waiting goes up, the longest wait starts; answering brings it down.
        let call = rig.sim.queueCall(workgroup: "Sales")
        try await eventually("waiting 1") {
            let s = try await statistics(rig, sales)
            return s.contains("\"InteractionsWaiting\" u 1") && s.contains("\"LongestWaitSince\" x")
        }
        let callPath = try #require(BridgeNames.interactionPath(call))
        try await eventually("call object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == callPath } }
        #expect(try await get(rig, callPath, "Workgroup", interface: BridgeNames.interaction) == "s \"Sales\"")
        #expect(try await rig.bus.busctl(["call", BridgeNames.busName, callPath, BridgeNames.interaction, "Pickup"]).status == 0)
        try await eventually("answered") {
            let s = try await statistics(rig, sales)
            return s.contains("\"InteractionsWaiting\" u 0") && s.contains("\"AnsweredThisShift\" u 1") && !s.contains("LongestWaitSince")
        }
        #expect(recorder.members("PropertiesChanged").contains { $0.path == sales && $0.arguments[1]["Statistics"] != nil })
        // SetActivated: the PUT names only this workgroup; the property follows.
        let off = try await rig.bus.busctl(["call", BridgeNames.busName, sales, w, "SetActivated", "b", "false"])
        #expect(off.status == 0, "\(off.stderr)")
        let put = try #require(rig.sim.requests.last { $0.method == "PUT" && $0.path.hasSuffix("/activations/users/agent") })
        #expect(put.body == .object([("activations", .object([("Sales", .bool(false))]))]))
        try await eventually("deactivated") { try await get(rig, sales, "Activated") == "b false" }
        // An administrator activates it again: the subscription brings it.
        rig.sim.setActivation("Sales", true)
        try await eventually("activated by the server") { try await get(rig, sales, "Activated") == "b true" }
        // 403: Forbidden, with the server's errorId.
        rig.sim.setStatisticsOptions { $0.activationForbidden = true }
        let refused = try await gdbus(rig, sales, "\(w).SetActivated", ["false"])
        #expect(refused.stderr.contains("io.github.icwsbridge.Bridge1.Error.Forbidden") && refused.stderr.contains("error.request.accessDenied"), "\(refused.stderr)")
        recorder.close()
        await rig.stop()
    }

    /// Null, error and wrong-type values remove the key (logged once each);
    /// statistics for a workgroup the user is not in change nothing.
    @Test func badStatisticValuesRemoveTheKeyAndNeverHurt() async throws {
        let (rig, _) = try await startRig()
        try await eventually("figures") { try await statistics(rig, sales).contains("\"AgentsLoggedIn\" u 5") }
        let loggedIn = WorkgroupStatistic.agentsLoggedIn.key(workgroup: "Sales")
        let waiting = WorkgroupStatistic.interactionsWaiting.key(workgroup: "Sales")
        rig.sim.sendStatistic(loggedIn, .object([("__type", "urn:inin.com:statistics:statisticErrorValue"), ("statisticValueType", 12), ("value", 3)]))
        try await eventually("error removes") { !(try await statistics(rig, sales)).contains("AgentsLoggedIn") }
        rig.sim.sendStatistic(waiting, .object([("__type", "urn:inin.com:statistics:statisticIntValue"), ("statisticValueType", 0), ("value", "many")]))
        try await eventually("wrong type removes") { !(try await statistics(rig, sales)).contains("InteractionsWaiting") }
        rig.sim.sendStatistic(waiting, .object([("__type", "urn:inin.com:statistics:statisticIntValue"), ("statisticValueType", 0), ("value", -4)]))
        rig.sim.sendStatistic(loggedIn, .object([("__type", "urn:inin.com:statistics:statisticIntValue"), ("statisticValueType", 0), ("value", 9)]))
        try await eventually("back") { try await statistics(rig, sales).contains("\"AgentsLoggedIn\" u 9") }
        #expect(!(try await statistics(rig, sales)).contains("InteractionsWaiting"), "a negative count is no count")
        rig.sim.sendStatistic(loggedIn, nil)
        try await eventually("null removes") { !(try await statistics(rig, sales)).contains("AgentsLoggedIn") }
        // A workgroup this user is not in (the server's mistake, or one just left).
        rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.statisticValues), "isDelta": true,
            "statisticValueChanges": [["statisticKey": WorkgroupStatistic.agentsLoggedIn.key(workgroup: "Elsewhere").json,
                                       "statisticValue": ["__type": "urn:inin.com:statistics:statisticIntValue", "statisticValueType": 0, "value": 1]]],
        ])
        #expect(try await rig.property(BridgeNames.session, "State") == "u 2")
        #expect(rig.sim.requests.count > 0)
        let log = rig.log
        #expect(log.components(separatedBy: "Sales/AgentsLoggedIn").count - 1 == 1, "an error is logged once per key and session")
        await rig.stop()
    }

    /// SetWrapUpCode: only a code of the interaction's workgroup; the wire
    /// carries code, segmentId, time, user and sourceInteractionId; the
    /// server's assignment shows in WrapUpCode; the call's end starts the
    /// after-call work and the status comes back after the timeout.
    @Test func wrapUpCodesAndAfterCallWork() async throws {
        let (rig, recorder) = try await startRig()
        try await eventually("codes") { try await get(rig, sales, "WrapUpCodes").contains("Sale made") }
        let call = rig.sim.queueCall(workgroup: "Sales")
        let path = try #require(BridgeNames.interactionPath(call))
        try await eventually("call object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == path } }
        #expect(try await rig.bus.busctl(["call", BridgeNames.busName, path, BridgeNames.interaction, "Pickup"]).status == 0)
        let sent: @Sendable () -> Int = { rig.sim.requests.filter { $0.path.contains("/interactions/") }.count }
        let before = sent()
        for (code, says) in [("Nope", "is not one of the codes of workgroup \"Sales\""), ("", "is not one of the codes")] {
            let r = try await gdbus(rig, path, "\(BridgeNames.interaction).SetWrapUpCode", ["'\(code)'"])
            #expect(r.stderr.contains("InvalidArgs") && r.stderr.contains(says), "\(code): \(r.stderr)")
        }
        #expect(sent() == before, "nothing reached the server")
        let set = try await rig.bus.busctl(["call", BridgeNames.busName, path, BridgeNames.interaction, "SetWrapUpCode", "s", "NoSale"])
        #expect(set.status == 0, "\(set.stderr)")
        let wire = try #require(rig.sim.requests.last { $0.path.hasSuffix("/interactions/\(call)/wrap-up-assignments") })
        #expect(wire.body?["code"] == .string("NoSale") && wire.body?["segmentId"] == .int(1) && wire.body?["user"] == .string("agent")
                && wire.body?["sourceInteractionId"] == .string(call), "\(String(describing: wire.body))")
        let time = wire.body?["time"]?.stringValue ?? ""
        #expect(time.utf8.count == 16 && time.hasSuffix("Z") && ContractMaps.unixSeconds(time).map { abs($0 - Int64(Date().timeIntervalSince1970)) < 60 } == true, "\(time)")
        try await eventually("WrapUpCode") { try await get(rig, path, "WrapUpCode", interface: BridgeNames.interaction) == "s \"NoSale\"" }
        // A server that answers 200 (not 201) is as good.
        rig.sim.setCallWorkOptions { $0.wrapUpStatus = 200 }
        #expect(try await rig.bus.busctl(["call", BridgeNames.busName, path, BridgeNames.interaction, "SetWrapUpCode", "s", "Sale"]).status == 0)
        // The segment id comes from Eic_WrapupConnectionSegments when it can be read.
        rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": "icws-bridge-my-interactions",
            "interactionsChanged": [["interactionId": .string(call), "attributes": ["Eic_WrapupConnectionSegments": .string("IID=\(call);SID=1;WUR=1|IID=\(call);SID=4;WUR=1")]]],
        ])
        try await eventually("segments") {
            try await get(rig, path, "Attributes", interface: BridgeNames.interaction).contains("SID=4")
        }
        #expect(try await rig.bus.busctl(["call", BridgeNames.busName, path, BridgeNames.interaction, "SetWrapUpCode", "s", "Callback"]).status == 0)
        #expect(rig.sim.requests.last { $0.path.hasSuffix("/wrap-up-assignments") }?.body?["segmentId"] == .int(4))
        // A call of a workgroup without codes: every code is refused.
        let other = rig.sim.queueCall(workgroup: "Support")
        let otherPath = try #require(BridgeNames.interactionPath(other))
        try await eventually("support call") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == otherPath } }
        let none = try await gdbus(rig, otherPath, "\(BridgeNames.interaction).SetWrapUpCode", ["'Sale'"])
        #expect(none.stderr.contains("InvalidArgs") && none.stderr.contains("Support"), "\(none.stderr)")
        // And a call of no workgroup at all.
        let plain = rig.sim.startCall()
        let plainPath = try #require(BridgeNames.interactionPath(plain))
        try await eventually("plain call") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == plainPath } }
        let noWorkgroup = try await gdbus(rig, plainPath, "\(BridgeNames.interaction).SetWrapUpCode", ["'Sale'"])
        #expect(noWorkgroup.stderr.contains("InvalidArgs") && noWorkgroup.stderr.contains("no workgroup"), "\(noWorkgroup.stderr)")
        // The call ends: after-call work (Follow Up), then Available after 3 s.
        #expect(try await rig.bus.busctl(["call", BridgeNames.busName, path, BridgeNames.interaction, "Disconnect"]).status == 0)
        try await eventually("ACW") { try await rig.property(BridgeNames.status, "IsAfterCallWork") == "b true" }
        try await eventually("available again", timeout: .seconds(10)) { try await rig.property(BridgeNames.status, "StatusId") == "s \"Available\"" }
        recorder.close()
        await rig.stop()
    }

    /// After a reconnect the workgroups are read again, the units made again
    /// (statistics PUT whole), and a faulted statistics unit is made again.
    @Test func aNewSessionReadsThemAgainAndTheUnitsComeBack() async throws {
        let (rig, recorder) = try await startRig()
        try await eventually("statistics unit") { try await rig.property(BridgeNames.session, "Subscriptions").contains("\"statistics\" 1") }
        let puts: @Sendable () -> Int = { rig.sim.requests.filter { $0.method == "PUT" && $0.path.hasSuffix("/statistic-values") }.count }
        let reads: @Sendable () -> Int = { rig.sim.requests.filter { $0.method == "GET" && $0.path.contains("/configuration/users/agent") }.count }
        let (p0, r0) = (puts(), reads())
        rig.sim.inject(.restart(downFor: .milliseconds(500)))
        try await eventually("read again", timeout: .seconds(20)) { reads() > r0 && puts() > p0 }
        try await eventually("figures again") { try await statistics(rig, sales).contains("InteractionsWaiting") }
        #expect(!recorder.members("InterfacesRemoved").contains { $0.arguments.first?.stringValue == sales }, "kept objects stay")
        // The statistics subscription faulted: made again with the backoff.
        let p1 = puts()
        rig.sim.inject(.subscriptionFaulted(subscriptionPathSuffix: "statistics/statistic-values"))
        try await eventually("re-made", timeout: .seconds(20)) { puts() > p1 }
        try await eventually("normal again") { try await rig.property(BridgeNames.session, "Subscriptions").contains("\"statistics\" 1") }
        recorder.close()
        await rig.stop()
    }

    /// Hostile configuration: a code list of 100,000 entries, a label 1 MB
    /// long; the daemon keeps going and the property stays within bounds.
    @Test func hugeCodeListsAndLabelsAreCut() async throws {
        let many = (0..<100_000).map { "C\($0)" }
        let (rig, recorder) = try await startRig(simulator: { c in
            c.workgroups = [SimWorkgroup(id: "Big", wrapUpActive: true, codes: many)]
            c.wrapUpLabels = ["C0": String(repeating: "L", count: 1 << 20)]
        })
        let big = try #require(BridgeNames.workgroupPath("Big"))
        try await eventually("object", timeout: .seconds(30)) { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == big } }
        let codes = try await rig.bus.busctl(["--json=short", "get-property", BridgeNames.busName, big, w, "WrapUpCodes"])
        #expect(codes.status == 0, "\(codes.stderr)")
        let parsed = try JSONSerialization.jsonObject(with: Data(codes.stdout.utf8)) as? [String: Any]
        let list = parsed?["data"] as? [[String]] ?? []
        #expect(list.count == 10_000, "cut to 10,000")
        #expect((list.first?[1].utf8.count ?? 0) <= 1024 + 3 && list.first?[1].hasSuffix("…") == true, "a label is cut to 1 KiB and marked")
        #expect(try await rig.property(BridgeNames.session, "State") == "u 2")
        recorder.close()
        await rig.stop()
    }

    /// A membership read that fails with 500 is tried again with the backoff until it succeeds.
    @Test func aFailedReadIsTriedAgainUntilItSucceeds() async throws {
        let sim = try await startSimulator { _ in }
        sim.inject(.failRequests(method: "GET", pathContains: "configuration/users/agent", status: 500, count: 2,
                                 body: .icws(errorId: "error.server.internal", message: "boom")))
        let rig = try await DaemonRig.start(sim: sim)
        let recorder = try await SignalRecorder(address: rig.bus.address)
        try await eventually("read at the third try", timeout: .seconds(20)) {
            try await get(rig, sales, "Name") == "s \"Sales Team\""
        }
        let reads = rig.sim.requests.filter { $0.method == "GET" && $0.path.contains("/configuration/users/agent") }
        #expect(reads.map(\.status) == [500, 500, 200], "\(reads.map(\.status))")
        #expect(rig.log.contains("workgroup information failed; trying again"))
        recorder.close()
        await rig.stop()
    }
}
