import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSProtocol
import ICWSSimulator
import Testing
import TestSupport

/// Contract v1.2 on the interaction objects and `Interactions`: account
/// codes, consult transfer, conferences and the recording's secure pause,
/// through the real daemon on a real dbus-daemon, called with busctl and
/// gdbus, against icws-sim answering each way part three allows.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CallWorkTests {
    let i = BridgeNames.interaction

    func startRig(_ extra: String = "", sim options: ((inout CallWorkOptions) -> Void)? = nil) async throws -> (DaemonRig, SignalRecorder) {
        let rig = try await DaemonRig.start(config: extra)
        if let options { rig.sim.setCallWorkOptions(options) }
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        let recorder = try await SignalRecorder(address: rig.bus.address)
        try await eventually("queue subscribed") {
            rig.sim.requests.contains { $0.method == "PUT" && $0.path.hasSuffix("/messaging/subscriptions/queues/icws-bridge-my-interactions") }
        }
        return (rig, recorder)
    }

    func busctl(_ rig: DaemonRig, _ path: String, _ member: String, _ args: [String] = [], interface: String? = nil) async throws -> CommandResult {
        try await rig.bus.busctl(["call", BridgeNames.busName, path, interface ?? i, member] + args)
    }

    /// gdbus prints the D-Bus error name.
    func gdbus(_ rig: DaemonRig, _ path: String, _ method: String, _ args: [String] = []) async throws -> CommandResult {
        try await runCommand(["gdbus", "call", "--address", rig.bus.address, "--dest", BridgeNames.busName, "--object-path", path, "--method", method] + args)
    }

    func get(_ rig: DaemonRig, _ path: String, _ name: String) async throws -> String {
        try await rig.bus.busctl(["get-property", BridgeNames.busName, path, i, name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A call on the agent's queue, answered, with its object on the bus.
    func connectedCall(_ rig: DaemonRig, _ recorder: SignalRecorder, name: String = "Caller") async throws -> (id: String, path: String) {
        let id = rig.sim.startCall(name: name)
        let path = try #require(BridgeNames.interactionPath(id))
        try await eventually("object \(id)") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == path } }
        #expect(try await busctl(rig, path, "Pickup").status == 0)
        try await eventually("connected \(id)") { try await get(rig, path, "State") == "u 3" }
        return (id, path)
    }

    /// Requests about interactions (the workgroup and status units may be made meanwhile).
    func sent(_ rig: DaemonRig) -> Int { rig.sim.requests.filter { $0.path.contains("/interactions") }.count }

    func requests(_ rig: DaemonRig, _ suffix: String) -> [SimRequest] { rig.sim.requests.filter { $0.path.hasSuffix(suffix) } }

    // MARK: Account codes

    @Test func accountCodesOnACallAndOnDial() async throws {
        let (rig, recorder) = try await startRig()
        let call = try await connectedCall(rig, recorder)
        #expect(try await get(rig, call.path, "AccountCode") == "s \"\"")
        let set = try await busctl(rig, call.path, "SetAccountCode", ["s", "4711"])
        #expect(set.status == 0, "\(set.stderr)")
        let wire = try #require(requests(rig, "/interactions/\(call.id)").last { $0.method == "POST" })
        #expect(wire.body == .object([("attributes", .object([("Eic_AccountCode", .string("4711"))]))]))
        try await eventually("AccountCode") { try await get(rig, call.path, "AccountCode") == "s \"4711\"" }
        #expect(recorder.members("PropertiesChanged").contains { $0.path == call.path && $0.arguments[1]["AccountCode"] == .string("4711") })
        // Bad codes never reach the server.
        let before = sent(rig)
        for bad in ["''", "'12a'", "'\(String(repeating: "1", count: 51))'", "'-1'", "'١٢'"] {
            let r = try await gdbus(rig, call.path, "\(i).SetAccountCode", [bad])
            #expect(r.status != 0 && r.stderr.contains("org.freedesktop.DBus.Error.InvalidArgs") && r.stderr.contains("1 to 50 digits"), "\(bad): \(r.stderr)")
        }
        #expect(sent(rig) == before)
        // Dial's accountCode option → accountCodeId; a bad one is refused and named.
        let dial = try await rig.bus.busctl([
            "call", BridgeNames.busName, BridgeNames.objectPath, BridgeNames.interactions, "Dial", "sa{sv}", "+13175550199", "1", "accountCode", "s", "99",
        ])
        #expect(dial.status == 0, "\(dial.stderr)")
        #expect(rig.sim.requests.last { $0.method == "POST" && $0.path.hasSuffix("/interactions") }?.body?["accountCodeId"]?.stringValue == "99")
        for bad in ["{'accountCode': <'x1'>}", "{'accountCode': <uint32 1>}"] {
            let r = try await gdbus(rig, BridgeNames.objectPath, "\(BridgeNames.interactions).Dial", ["'123'", bad])
            #expect(r.status != 0 && r.stderr.contains("InvalidArgs") && r.stderr.contains("accountCode"), "\(bad): \(r.stderr)")
        }
        // The server's refusal carries its errorId and message.
        rig.sim.inject(.failRequests(method: "POST", pathContains: "interactions/\(call.id)", status: 500, count: 1,
                                     body: .icws(errorId: "error.server.accountCodes.disabled", message: "Account codes are off")))
        let refused = try await gdbus(rig, call.path, "\(i).SetAccountCode", ["'1'"])
        #expect(refused.stderr.contains("Error.ServerError") && refused.stderr.contains("error.server.accountCodes.disabled")
                && refused.stderr.contains("Account codes are off"), "\(refused.stderr)")
        recorder.close()
        await rig.stop()
    }

    // MARK: Consult transfer

    @Test func consultThenSpeakToEachAndCompleteTheTransfer() async throws {
        let (rig, recorder) = try await startRig()
        let call = try await connectedCall(rig, recorder)
        let r = try await busctl(rig, call.path, "Consult", ["s", "7002"])
        #expect(r.status == 0, "\(r.stderr)")
        let consult = try #require(rig.sim.consult(of: call.id))
        let legPath = try #require(BridgeNames.interactionPath(consult.leg))
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "so \"\(consult.consultId)\" \"\(legPath)\"", "\(r.stdout)")
        #expect(requests(rig, "/interactions/\(call.id)/consult").last?.body == .object([("target", .string("7002"))]))
        try await eventually("leg object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == legPath } }
        try await eventually("ConsultId") { try await get(rig, call.path, "ConsultId") == "s \"\(consult.consultId)\"" }
        try await eventually("ConsultSpeakTo") { try await get(rig, call.path, "ConsultSpeakTo") == "s \"consult\"" }
        // SpeakTo: any case, each audience as the contract maps it.
        for (party, original, consulted, shown) in [("CALLER", true, false, "caller"), ("both", true, true, "both"), ("Consult", false, true, "consult")] {
            let s = try await busctl(rig, call.path, "SpeakTo", ["s", party])
            #expect(s.status == 0, "\(party): \(s.stderr)")
            let wire = try #require(requests(rig, "/consult/\(consult.consultId)/change-audience").last)
            #expect(wire.body == .object([("audience", .object([("originalParty", .bool(original)), ("consultedParty", .bool(consulted))]))]), "\(party)")
            try await eventually("ConsultSpeakTo \(shown)") { try await get(rig, call.path, "ConsultSpeakTo") == "s \"\(shown)\"" }
        }
        let before = sent(rig)
        let nobody = try await gdbus(rig, call.path, "\(i).SpeakTo", ["'nobody'"])
        #expect(nobody.stderr.contains("InvalidArgs") && nobody.stderr.contains("caller, consult or both"), "\(nobody.stderr)")
        #expect(sent(rig) == before)
        #expect(try await busctl(rig, call.path, "CompleteTransfer").status == 0)
        #expect(requests(rig, "/interactions/\(call.id)/consult/\(consult.consultId)/conclude").count == 1)
        try await eventually("both legs gone") {
            let gone = Set(recorder.members("InterfacesRemoved").compactMap { $0.arguments.first?.stringValue })
            return gone.contains(call.path) && gone.contains(legPath)
        }
        recorder.close()
        await rig.stop()
    }

    @Test func cancelConsultBringsTheCallerBackAndNoConsultIsAnError() async throws {
        let (rig, recorder) = try await startRig()
        let call = try await connectedCall(rig, recorder)
        // No consult yet: SpeakTo, CompleteTransfer and CancelConsult say NoConsult, and send nothing.
        let before = sent(rig)
        for (method, args) in [("SpeakTo", ["'caller'"]), ("CompleteTransfer", []), ("CancelConsult", [])] {
            let r = try await gdbus(rig, call.path, "\(i).\(method)", args)
            #expect(r.status != 0 && r.stderr.contains("io.github.icwsbridge.Bridge1.Error.NoConsult"), "\(method): \(r.stderr)")
        }
        #expect(sent(rig) == before)
        // A bad target never reaches the server.
        for bad in ["''", "'\(String(repeating: "x", count: 257))'"] {
            let r = try await gdbus(rig, call.path, "\(i).Consult", [bad])
            #expect(r.stderr.contains("InvalidArgs"), "\(r.stderr)")
        }
        #expect(try await busctl(rig, call.path, "Consult", ["s", "7003"]).status == 0)
        let consult = try #require(rig.sim.consult(of: call.id))
        let legPath = try #require(BridgeNames.interactionPath(consult.leg))
        try await eventually("held") { try await get(rig, call.path, "State") == "u 4" }
        #expect(try await busctl(rig, call.path, "CancelConsult").status == 0)
        let delete = try #require(rig.sim.requests.last { $0.method == "DELETE" && $0.path.hasSuffix("/interactions/\(call.id)/consult/\(consult.consultId)") })
        #expect(delete.status == 200)
        try await eventually("leg gone") { recorder.members("InterfacesRemoved").contains { $0.arguments.first?.stringValue == legPath } }
        try await eventually("caller back") { try await get(rig, call.path, "State") == "u 3" }
        #expect(try await get(rig, call.path, "ConsultId") == "s \"\"")
        // The server's errors: 404 → NoSuchInteraction; others carry errorId and message.
        rig.sim.inject(.failRequests(method: "POST", pathContains: "/consult", status: 404, count: 1, body: .icws(errorId: "error.request.interaction.notFound", message: "gone")))
        let r404 = try await gdbus(rig, call.path, "\(i).Consult", ["'7002'"])
        #expect(r404.stderr.contains("Error.NoSuchInteraction"), "\(r404.stderr)")
        rig.sim.inject(.failRequests(method: "POST", pathContains: "/consult", status: 400, count: 1, body: .icws(errorId: "error.request.consult.invalidTarget", message: "no such target")))
        let r400 = try await gdbus(rig, call.path, "\(i).Consult", ["'7002'"])
        #expect(r400.stderr.contains("Error.ServerError") && r400.stderr.contains("error.request.consult.invalidTarget") && r400.stderr.contains("no such target"), "\(r400.stderr)")
        // A 201 without the consult's names is a ServerError, not a made-up consult.
        rig.sim.inject(.failRequests(method: "POST", pathContains: "/consult", status: 201, count: 1, body: .empty))
        let empty = try await gdbus(rig, call.path, "\(i).Consult", ["'7002'"])
        #expect(empty.stderr.contains("Error.ServerError") && empty.stderr.contains("did not name the consult"), "\(empty.stderr)")
        #expect(try await get(rig, call.path, "ConsultId") == "s \"\"")
        recorder.close()
        await rig.stop()
    }

    /// A server that does not mark the original (no Eic_ConsultCallId): the
    /// consult is known from Consult's reply while it lasts; a leg that comes
    /// after the reply, and one that never comes, are both fine; the far end
    /// hanging up ends it.
    @Test func aConsultKnownOnlyFromTheReplyLastsWhileItsLegDoes() async throws {
        let (rig, recorder) = try await startRig(sim: { $0.markConsult = false; $0.consultLeg = .afterReply })
        let call = try await connectedCall(rig, recorder)
        let r = try await busctl(rig, call.path, "Consult", ["s", "7002"])
        #expect(r.status == 0, "\(r.stderr)")
        let consult = try #require(rig.sim.consult(of: call.id))
        let legPath = try #require(BridgeNames.interactionPath(consult.leg))
        #expect(r.stdout.contains(legPath), "the path the leg will have: \(r.stdout)")
        #expect(try await get(rig, call.path, "ConsultId") == "s \"\(consult.consultId)\"")
        try await eventually("leg after the reply") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == legPath } }
        #expect(try await busctl(rig, call.path, "SpeakTo", ["s", "caller"]).status == 0)
        #expect(requests(rig, "/consult/\(consult.consultId)/change-audience").count == 1)
        // The consulted party hangs up: the leg goes, and with it the consult.
        rig.sim.dropConsultLeg(consult.consultId)
        try await eventually("leg gone") { recorder.members("InterfacesRemoved").contains { $0.arguments.first?.stringValue == legPath } }
        try await eventually("no consult") { try await get(rig, call.path, "ConsultId") == "s \"\"" }
        #expect(recorder.members("PropertiesChanged").contains { $0.path == call.path && $0.arguments[1]["ConsultId"] == .string("") })

        // A leg that never appears: the consult still lasts until it is completed.
        rig.sim.setCallWorkOptions { $0.consultLeg = .never }
        #expect(try await busctl(rig, call.path, "Consult", ["s", "7003"]).status == 0)
        let second = try #require(rig.sim.consult(of: call.id))
        #expect(try await get(rig, call.path, "ConsultId") == "s \"\(second.consultId)\"")
        #expect(try await busctl(rig, call.path, "CompleteTransfer").status == 0)
        #expect(requests(rig, "/consult/\(second.consultId)/conclude").count == 1)
        try await eventually("original gone") { recorder.members("InterfacesRemoved").contains { $0.arguments.first?.stringValue == call.path } }
        recorder.close()
        await rig.stop()
    }

    // MARK: Secure pause

    @Test func pauseAndResumeTheRecording() async throws {
        let (rig, recorder) = try await startRig()
        let call = try await connectedCall(rig, recorder)
        #expect(try await get(rig, call.path, "RecordingResumesAt") == "s \"\"")
        for (seconds, body) in [
            ("0", JSONValue.object([("securePauseType", .int(1))])), ("30", .object([("securePauseType", .int(3)), ("duration", .int(30))])),
            ("86400", .object([("securePauseType", .int(3)), ("duration", .int(86400))])), ("4294967295", .object([("securePauseType", .int(2))])),
        ] {
            let r = try await busctl(rig, call.path, "PauseRecording", ["u", seconds])
            #expect(r.status == 0, "\(seconds): \(r.stderr)")
            #expect(requests(rig, "/interactions/\(call.id)/secure-pause").last?.body == body, "\(seconds)")
        }
        try await eventually("paused until resumed") { try await get(rig, call.path, "RecordingResumesAt") == "s \"99991231T235959Z\"" }
        let before = sent(rig)
        for bad in ["86401", "4294967294"] {
            let r = try await gdbus(rig, call.path, "\(i).PauseRecording", ["uint32 \(bad)"])
            #expect(r.stderr.contains("InvalidArgs") && r.stderr.contains("1 to 86400"), "\(bad): \(r.stderr)")
        }
        #expect(sent(rig) == before)
        #expect(try await busctl(rig, call.path, "ResumeRecording").status == 0)
        #expect(requests(rig, "/interactions/\(call.id)/secure-pause").last?.body == .object([("securePauseType", .int(4))]))
        try await eventually("resumed") { try await get(rig, call.path, "RecordingResumesAt") == "s \"\"" }
        // A short pause ends by itself on the server; the property follows.
        #expect(try await busctl(rig, call.path, "PauseRecording", ["u", "1"]).status == 0)
        try await eventually("paused") { try await get(rig, call.path, "RecordingResumesAt") != "s \"\"" }
        try await eventually("ended by itself", timeout: .seconds(5)) { try await get(rig, call.path, "RecordingResumesAt") == "s \"\"" }
        // An alerting call cannot be paused: the server's 403 is Forbidden.
        let ringing = rig.sim.startCall(name: "Ringing")
        let ringingPath = try #require(BridgeNames.interactionPath(ringing))
        try await eventually("ringing object") { recorder.members("InterfacesAdded").contains { $0.arguments.first?.stringValue == ringingPath } }
        let forbidden = try await gdbus(rig, ringingPath, "\(i).PauseRecording", ["uint32 0"])
        #expect(forbidden.stderr.contains("io.github.icwsbridge.Bridge1.Error.Forbidden"), "\(forbidden.stderr)")
        recorder.close()
        await rig.stop()
    }

    // MARK: Conferences

    @Test func aConferenceOfTwoCallsGrowsAndEndsWithItsLastParty() async throws {
        let (rig, recorder) = try await startRig()
        let a = try await connectedCall(rig, recorder, name: "A")
        let b = try await connectedCall(rig, recorder, name: "B")
        let c = try await connectedCall(rig, recorder, name: "C")
        let before = sent(rig)
        // Bad lists never reach the server.
        for (paths, named) in [([a.path], "2 to 16"), ([a.path, a.path], "named twice"), ([a.path, "/io/github/icwsbridge/Bridge1/Interaction/nope"], "nope"),
                               ([a.path, "/"], "not an interaction object")] {
            let list = "[" + paths.map { "objectpath '\($0)'" }.joined(separator: ", ") + "]"
            let r = try await gdbus(rig, BridgeNames.objectPath, "\(BridgeNames.interactions).Conference", ["@ao \(list)"])
            #expect(r.stderr.contains("InvalidArgs") && r.stderr.contains(named), "\(paths): \(r.stderr)")
        }
        let seventeen = "[" + (0..<17).map { _ in "objectpath '\(a.path)'" }.joined(separator: ", ") + "]"
        #expect(try await gdbus(rig, BridgeNames.objectPath, "\(BridgeNames.interactions).Conference", [seventeen]).stderr.contains("2 to 16"))
        #expect(sent(rig) == before)

        let made = try await busctl(rig, BridgeNames.objectPath, "Conference", ["ao", "2", a.path, b.path], interface: BridgeNames.interactions)
        #expect(made.status == 0, "\(made.stderr)")
        let conferenceId = try #require(rig.sim.conferences.keys.first)
        #expect(made.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "s \"\(conferenceId)\"")
        #expect(requests(rig, "/interactions/conferences").last?.body == .object([("interactions", .array([.string(a.id), .string(b.id)]))]))
        let parent = try #require(rig.sim.conferences[conferenceId]?.parent)
        let parentPath = try #require(BridgeNames.interactionPath(parent))
        try await eventually("children name their parent") {
            let pa = try await get(rig, a.path, "ConferenceParent")
            let pb = try await get(rig, b.path, "ConferenceParent")
            return pa == "o \"\(parentPath)\"" && pb == "o \"\(parentPath)\""
        }
        #expect(try await get(rig, parentPath, "ConferenceParent") == "o \"/\"")
        #expect(try await get(rig, a.path, "ConferenceId") == "s \"\(conferenceId)\"")
        // A third party joins.
        let add = try await busctl(rig, BridgeNames.objectPath, "AddToConference", ["sao", conferenceId, "1", c.path], interface: BridgeNames.interactions)
        #expect(add.status == 0, "\(add.stderr)")
        let put = try #require(rig.sim.requests.last { $0.method == "PUT" && $0.path.hasSuffix("/interactions/conferences/\(conferenceId)") })
        #expect(put.body == .object([("interactions", .array([.string(c.id)]))]))
        try await eventually("third child") { try await get(rig, c.path, "ConferenceParent") == "o \"\(parentPath)\"" }
        // An unknown conference, and bad lists.
        let unknown = try await gdbus(rig, BridgeNames.objectPath, "\(BridgeNames.interactions).AddToConference", ["'conference-none'", "@ao ['\(c.path)']"])
        #expect(unknown.stderr.contains("Error.ServerError") && unknown.stderr.contains("error.request.notFound"), "\(unknown.stderr)")
        for bad in [["''", "@ao ['\(c.path)']"], ["'x'", "@ao []"]] {
            let r = try await gdbus(rig, BridgeNames.objectPath, "\(BridgeNames.interactions).AddToConference", bad)
            #expect(r.stderr.contains("InvalidArgs"), "\(bad): \(r.stderr)")
        }
        // Two parties hang up: the server disconnects the last, and the conference goes.
        rig.sim.remoteHangup(a.id)
        rig.sim.remoteHangup(b.id)
        try await eventually("everything gone") {
            let gone = Set(recorder.members("InterfacesRemoved").compactMap { $0.arguments.first?.stringValue })
            return gone.isSuperset(of: [a.path, b.path, c.path, parentPath])
        }
        recorder.close()
        await rig.stop()
    }

    /// A server whose children name the conference (not a row): no entry has
    /// that id, so ConferenceParent is "/"; the 201 naming the parent row is taken as sent.
    @Test func aParentIdThatNamesNoEntryIsSlash() async throws {
        let (rig, recorder) = try await startRig(sim: { $0.parentNaming = .conferenceId; $0.conferenceIdIsParentRow = true })
        let a = try await connectedCall(rig, recorder, name: "A")
        let b = try await connectedCall(rig, recorder, name: "B")
        let made = try await busctl(rig, BridgeNames.objectPath, "Conference", ["ao", "2", a.path, b.path], interface: BridgeNames.interactions)
        #expect(made.status == 0, "\(made.stderr)")
        let (conferenceId, conference) = try #require(rig.sim.conferences.first)
        #expect(made.stdout.contains("\"\(conference.parent)\""), "the 201 named the parent row: \(made.stdout)")
        try await eventually("child again") { try await get(rig, a.path, "ConferenceId") == "s \"\(conferenceId)\"" }
        #expect(try await get(rig, a.path, "ConferenceParent") == "o \"/\"")
        // Adding by the parent row's id works on this server too.
        let c = try await connectedCall(rig, recorder, name: "C")
        #expect(try await busctl(rig, BridgeNames.objectPath, "AddToConference", ["sao", conference.parent, "1", c.path], interface: BridgeNames.interactions).status == 0)
        recorder.close()
        await rig.stop()
    }
}
