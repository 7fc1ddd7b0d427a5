import ICWS
import ICWSProtocol
import Testing

/// Every session request is built in one place (`ICWSRequest`): its method,
/// path, body and the statuses that mean success.
@Suite struct RequestTests {
    @Test func callControlPathsAndBodies() {
        let hold = ICWSRequest.interaction("1001", .hold(true))
        #expect(hold.path == "/interactions/1001/hold" && hold.body == .object([("on", .bool(true))]))
        #expect(ICWSRequest.interaction("1001", .pickup).body == nil)
        #expect(ICWSRequest.interaction("1001", .sendToVoicemail).path == "/interactions/1001/send-to-voicemail")
        #expect(ICWSRequest.interaction("1001", .sendDigits("12#")).body == .object([("dtmfDigits", .string("12#"))]))
        #expect(ICWSRequest.interaction("1001", .blindTransfer(target: "7002")).body == .object([("target", .string("7002"))]))
    }

    /// An id or user from outside stays one path segment.
    @Test func hostileIdsStayOneSegment() {
        let r = ICWSRequest.interaction("../connection?x=1#", .disconnect)
        #expect(!r.path.dropFirst("/interactions/".count).dropLast("/disconnect".count).contains("/"), "\(r.path)")
        #expect(!r.path.contains("?") && !r.path.contains("#"), "\(r.path)")
        let s = ICWSRequest.setUserStatus(userId: "a/b", statusId: "Available")
        #expect(s.path.hasPrefix("/status/user-statuses/") && !s.path.dropFirst("/status/user-statuses/".count).contains("/"), "\(s.path)")
    }

    @Test func statusAndCallBodiesCarryOnlyWhatIsGiven() {
        let plain = ICWSRequest.setUserStatus(userId: "agent", statusId: "Available")
        #expect(plain.body == .object([("statusId", .string("Available"))]))
        #expect(plain.accept.contains(202), "a 202 with a requestId is success (completed later)")
        let full = ICWSRequest.setUserStatus(userId: "agent", statusId: "Gone Home", notes: "n", forwardNumber: "100")
        #expect(full.body == .object([("statusId", .string("Gone Home")), ("notes", .string("n")), ("forwardNumber", .string("100"))]))
        let call = ICWSRequest.createCall(target: "100", workgroup: "Sales", attributes: [("K", "V")])
        #expect(call.path == "/interactions" && call.accept == [200, 201])
        #expect(call.body?["workgroup"] == .string("Sales") && call.body?["additionalAttributes"]?["K"] == .string("V"))
        #expect(ICWSRequest.createCall(target: "100").body?["workgroup"] == nil)
    }

    @Test func sessionStationAndSubscriptions() {
        #expect(ICWSRequest.logout.accept.contains(404), "a session already gone is logged out")
        #expect(ICWSRequest.unsubscribe("queues/x").path == "/messaging/subscriptions/queues/x")
        #expect(ICWSRequest.unsubscribe("queues/x").accept.contains(404))
        #expect(ICWSRequest.subscribe("queues/x", body: nil).accept == [200, 201, 204])
        #expect(ICWSRequest.station.path == "/connection/station" && ICWSRequest.disconnectStation.path == "/connection/station")
    }

    /// Contract v1.2's requests: exactly the bodies the contract names.
    @Test func afterTheCallAndAroundIt() {
        let wrap = ICWSRequest.wrapUpAssignment("1001", code: "Sale", segmentId: 3, time: "20240301T142210Z", user: "jdoe")
        #expect(wrap.method == .post && wrap.path == "/interactions/1001/wrap-up-assignments" && wrap.accept.contains(201))
        #expect(wrap.body == .object([("code", .string("Sale")), ("segmentId", .int(3)), ("time", .string("20240301T142210Z")),
                                      ("user", .string("jdoe")), ("sourceInteractionId", .string("1001"))]))
        #expect(ICWSRequest.setAttributes("1001", [("Eic_AccountCode", "42")]).body == .object([("attributes", .object([("Eic_AccountCode", .string("42"))]))]))
        #expect(ICWSRequest.setAttributes("1001", []).path == "/interactions/1001")
        #expect(ICWSRequest.consult("1001", target: "7002").body == .object([("target", .string("7002"))]))
        let audiences = ICWSRequest.Audience.allCases.map { ICWSRequest.changeAudience("1", consultId: "c/1", $0) }
        #expect(audiences.map { $0.body?["audience"] } == [
            .object([("originalParty", .bool(true)), ("consultedParty", .bool(false))]),
            .object([("originalParty", .bool(false)), ("consultedParty", .bool(true))]),
            .object([("originalParty", .bool(true)), ("consultedParty", .bool(true))]),
        ])
        #expect(audiences[0].path.hasSuffix("/change-audience") && !audiences[0].path.contains("c/1"), "the consult id stays one segment: \(audiences[0].path)")
        #expect(ICWSRequest.concludeConsult("1", consultId: "c").path == "/interactions/1/consult/c/conclude")
        #expect(ICWSRequest.cancelConsult("1", consultId: "c").method == .delete)
        #expect(ICWSRequest.securePause("1", .serverDefault).body == .object([("securePauseType", .int(1))]))
        #expect(ICWSRequest.securePause("1", .untilResumed).body == .object([("securePauseType", .int(2))]))
        #expect(ICWSRequest.securePause("1", .seconds(30)).body == .object([("securePauseType", .int(3)), ("duration", .int(30))]))
        #expect(ICWSRequest.securePause("1", .resume).body == .object([("securePauseType", .int(4))]))
        #expect(ICWSRequest.createConference(["1", "2"]).body == .object([("interactions", .array([.string("1"), .string("2")]))]))
        #expect(ICWSRequest.addToConference("conf 1", ["3"]).method == .put && ICWSRequest.addToConference("conf 1", ["3"]).path == "/interactions/conferences/conf%201")
        #expect(ICWSRequest.createCall(target: "1", accountCode: "77").body?["accountCodeId"] == .string("77"))
    }
}
