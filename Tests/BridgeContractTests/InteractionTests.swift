import BridgeContract
import DBusKit
import ICWSProtocol
import Testing

/// The agent's own interactions (contract v1.1): the cache's snapshot and
/// delta rules, the property mapping and the object paths.
@Suite struct InteractionCacheTests {
    func q(_ id: String, _ attributes: [(String, String)]) -> QueueInteraction { QueueInteraction(interactionId: id, attributes: attributes) }
    let sub = "icws-bridge-my-interactions"

    @Test func snapshotsReplaceAndDeltasMerge() {
        var c = InteractionsCache()
        var ch = c.apply(QueueContentsMessage(isDelta: false, subscriptionId: sub, added: [q("1", [("Eic_State", "A"), ("Eic_RemoteName", "ACME")]), q("2", [("Eic_State", "C")])]))
        #expect(ch.added.map(\.id) == ["1", "2"] && ch.removed.isEmpty)
        // A delta merges attribute by attribute.
        ch = c.apply(QueueContentsMessage(isDelta: true, subscriptionId: sub, changed: [q("1", [("eic_state", "C")])]))
        #expect(ch.changed.map(\.id) == ["1"])
        #expect(c["1"]?["Eic_State"] == "C" && c["1"]?["Eic_RemoteName"] == "ACME")
        // A snapshot replaces: 2 is gone, 1 keeps its place with only the new attributes, 3 is new.
        ch = c.apply(QueueContentsMessage(isDelta: false, subscriptionId: sub, added: [q("3", [("Eic_State", "A")]), q("1", [("Eic_State", "H")])]))
        #expect(ch.removed == ["2"] && ch.added.map(\.id) == ["3"] && ch.changed.map(\.id) == ["1"])
        #expect(c["1"]?.attributes.count == 1 && c["1"]?["Eic_RemoteName"] == nil)
        #expect(c.entries.map(\.id) == ["1", "3"])
        // Removal, and an empty id is ignored.
        ch = c.apply(QueueContentsMessage(isDelta: true, subscriptionId: sub, added: [q("", [])], removed: ["3", "unknown"]))
        #expect(ch.removed == ["3"] && ch.ignored == 1 && c.count == 1)
    }

    @Test func propertiesFollowTheAttributes() {
        let e = InteractionEntry(id: "1001", attributes: [
            ("Eic_State", "H"), ("Eic_ObjectType", "Call"), ("Eic_CallDirection", "O"), ("Eic_RemoteName", "ACME"),
            ("Eic_RemoteAddress", "+1317"), ("Eic_Muted", "1"), ("Eic_Capabilities", "4355"), ("Eic_InitiationTime", "20240301T141502Z"),
            ("Custom", "x"),
        ])
        let p = Dictionary(uniqueKeysWithValues: ContractMaps.interactionProperties(e).map { ($0.0.name, $0.1) })
        #expect(p["Id"] == .string("1001") && p["Type"] == .string("Call") && p["State"] == .uint32(4) && p["StateCode"] == .string("H"))
        #expect(p["Direction"] == .uint32(2) && p["Muted"] == .bool(true) && p["Capabilities"] == .uint32(4355))
        #expect(p["ConferenceId"] == .string("") && p["InitiationTime"] == .string("20240301T141502Z"))
        #expect(p["Attributes"]?["Custom"] == .string("x"))
        // Odd values: an unknown state letter, a capability that is not a 32-bit number.
        let odd = InteractionEntry(id: "2", attributes: [("Eic_State", "Z"), ("Eic_Capabilities", "12345678901234"), ("Eic_Muted", "true")])
        let o = Dictionary(uniqueKeysWithValues: ContractMaps.interactionProperties(odd).map { ($0.0.name, $0.1) })
        #expect(o["State"] == .uint32(0) && o["StateCode"] == .string("Z") && o["Capabilities"] == .uint32(0) && o["Muted"] == .bool(false))
        // Every letter of the contract's State list, and the number the XML gives it.
        let letters = ["O", "A", "C", "H", "M", "P", "R", "X", "S", "I", "E"]
        #expect(letters.enumerated().allSatisfy { InteractionState(code: $0.element).rawValue == UInt32($0.offset + 1) })
        #expect(InteractionState(code: "Z") == .unknown && InteractionState(bus: 99) == .unknown)
        #expect(CallDirection(code: "I") == .inbound && CallDirection(code: "O") == .outbound && CallDirection(code: nil) == .unknown)
        #expect(SubscriptionHealth(bus: 3) == .faulted && SubscriptionHealth(bus: 7) == .none)
    }

    @Test func pathsEscapeEveryByteOutsideLettersAndDigits() {
        #expect(BridgeNames.interactionPath("100203040506") == "/io/github/icwsbridge/Bridge1/Interaction/100203040506")
        #expect(BridgeNames.interactionPath("a-b/c é") == "/io/github/icwsbridge/Bridge1/Interaction/a_2db_2fc_20_c3_a9")
        #expect(BridgeNames.interactionPath("") == nil)
        // Every path is one D-Bus accepts, whatever the id.
        for id in ["..", "/", "_", "\u{0}", String(repeating: "x", count: 300), "💥"] {
            let path = BridgeNames.interactionPath(id) ?? ""
            #expect(DBusValue.isValidObjectPath(path), "\(id.debugDescription)")
        }
    }

    @Test func queueMessagesDecodeWithOddValues() throws {
        let text = #"{"__type":"urn:inin.com:queues:queueContentsMessage","isDelta":true,"subscriptionId":"s","interactionsChanged":[{"interactionId":"1","attributes":{"Eic_Capabilities":12345678901234,"Eic_Muted":true,"Nested":{"a":[1]}}}],"interactionsRemoved":["2"]}"#
        guard case .queueContents(let m) = try ICWSMessage.decode(text: Array(text.utf8)) else {
            Issue.record("not a queue message")
            return
        }
        #expect(m.changed.first?.attributes.map(\.1) == ["12345678901234", "true", #"{"a":[1]}"#])
        #expect(m.removed == ["2"] && m.added.isEmpty)
        let state = #"{"__type":"urn:inin.com:queues:queueSubscriptionStateMessage","isDelta":true,"subscriptionId":"s","state":3,"error":{"message":"gone"}}"#
        guard case .queueSubscriptionState(let s) = try ICWSMessage.decode(text: Array(state.utf8)) else {
            Issue.record("not a queue state message")
            return
        }
        #expect(s.state == .faulted && s.error?.message == "gone" && s.subscriptionId == "s")
    }
}
