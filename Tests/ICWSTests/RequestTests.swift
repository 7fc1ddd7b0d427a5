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
}
