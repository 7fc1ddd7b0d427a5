import BridgeContract
import DBusKit
import ICWSProtocol
import Testing

/// The one delta rule, for every record the daemon keeps across messages:
/// for any state and any delta, a field the delta names takes its value (a
/// null clears it) and a field it does not name keeps its value.
@Suite struct DeltaTests {
    typealias Generator = (inout SplitMix64) -> JSONValue

    static func text(_ r: inout SplitMix64) -> JSONValue { .string(["", "a", "Lunch", "Ünïcode", "x y"][Int(r.next() % 5)]) }
    static func flag(_ r: inout SplitMix64) -> JSONValue { .bool(r.next() % 2 == 0) }
    static func small(_ r: inout SplitMix64) -> JSONValue { .int(Int64(r.next() % 4)) }
    static func attributes(_ r: inout SplitMix64) -> JSONValue {
        var members: [(String, JSONValue)] = []
        for name in ["Eic_State", "Eic_RemoteName", "eic_remotename", "Eic_Muted"] where r.next() % 2 == 0 {
            if members.contains(where: { $0.0.lowercased() == name.lowercased() }) { continue }
            members.append((name, r.next() % 4 == 0 ? .null : text(&r)))
        }
        return .object(members)
    }

    /// A random object with `required` members and any subset of `fields`,
    /// some of them null.
    static func object(_ required: [(String, JSONValue)], _ fields: [(String, Generator)], _ r: inout SplitMix64, nulls: Bool) -> JSONValue {
        var members = required
        for (key, gen) in fields where r.next() % 3 != 0 {
            members.append((key, nulls && r.next() % 5 == 0 ? .null : gen(&r)))
        }
        return .object(members)
    }

    /// Checks the rule over `runs` random pairs of one record kind.
    static func check<R: DeltaRecord>(
        _ kind: String, runs: Int = 400, required: [(String, JSONValue)], fields: [(String, Generator)],
        decode: (JSONValue) throws -> R
    ) throws {
        var r = SplitMix64(seed: 0x5eed_0000 &+ UInt64(kind.utf8.count))
        for run in 0..<runs {
            let base = try decode(object(required, fields, &r, nulls: false))
            let delta = try decode(object(required, fields, &r, nulls: true))
            var merged = base
            merged.apply(delta: delta)
            for field in R.deltaFields {
                if delta.named.contains(field.key) {
                    #expect(field.same(merged, delta) || field.key == "attributes" || field.key == "properties", "\(kind) run \(run): \(field.key) not taken from the delta")
                } else {
                    #expect(field.same(merged, base), "\(kind) run \(run): \(field.key) changed though the delta did not name it")
                }
            }
        }
    }

    @Test func userStatus() throws {
        try Self.check(
            "userStatus", required: [("userId", "agent")],
            fields: [
                ("statusId", Self.text), ("notes", Self.text), ("forwardNumber", Self.text), ("statusChanged", Self.text),
                ("loggedIn", Self.flag), ("onPhone", Self.flag),
            ]
        ) { try UserStatus.decode($0, field: "s") }
    }

    @Test func statusCatalogue() throws {
        try Self.check(
            "statusMessage", required: [("statusId", "Available")],
            fields: [("messageText", Self.text), ("groupTag", Self.text)] + StatusMessage.flagNames.map { ($0, Self.flag) }
        ) { try StatusMessage.decode($0, field: "s") }
    }

    @Test func stationInformation() throws {
        try Self.check(
            "station", required: [],
            fields: [
                ("id", Self.text), ("extension", Self.text), ("canBeDialed", Self.flag), ("ringAlways", Self.flag), ("sipAddress", Self.text),
                ("sipUser", Self.text), ("remoteNumber", Self.text), ("managedIPPhone", Self.text),
                ("emergencyResponderLocationID", Self.text), ("stationSetting", Self.small), ("allowedMediaTypes", { r in .array([Self.small(&r)]) }),
            ]
        ) { try StationInformation.decode($0, field: "s") }
    }

    @Test func alertingDetail() throws {
        try Self.check(
            "alerting", required: [("interactionId", "1001"), ("alertAction", 1)],
            fields: [
                ("interactionType", Self.text), ("name", Self.text), ("address", Self.text), ("alertType", Self.small),
                ("autoAnswer", Self.flag), ("monitoredQueue", { r in ["queueType": Self.small(&r), "queueName": Self.text(&r)] }),
                ("attributes", Self.attributes),
            ]
        ) { json in
            guard case .interactionAlerting(let m) = try ICWSMessage.decode(
                ["__type": .string(ICWSMessage.TypeURN.interactionAlerting), "isDelta": true, "alertingInteractionDetails": [json]]),
                let d = m.details.first
            else { throw MessageDecodeError(field: "", reason: "not an alerting message") }
            return d
        }
    }

    @Test func queueInteraction() throws {
        try Self.check(
            "queue", required: [("interactionId", "1001")], fields: [("conferenceParentId", Self.text), ("attributes", Self.attributes)]
        ) { json in
            guard case .queueContents(let m) = try ICWSMessage.decode(
                ["__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": "q", "interactionsChanged": [json]]),
                let q = m.changed.first
            else { throw MessageDecodeError(field: "", reason: "not a queue message") }
            return q
        }
    }

    /// Attributes merge by name: a value sets, a null removes, the rest stay.
    @Test func attributesMergeByName() {
        var attributes = [("Eic_State", "A"), ("Eic_RemoteName", "Ann"), ("Eic_Muted", "0")]
        mergeAttributes(&attributes, [("eic_state", "C")], cleared: ["EIC_MUTED"])
        #expect(sameAttributes(attributes, [("Eic_State", "C"), ("Eic_RemoteName", "Ann")]))
    }

    // The caches apply the rule: the reported defect and its siblings.

    @Test func aStatusDeltaWithoutLoggedInKeepsIt() {
        var cache = StatusCache()
        cache.userId = "agent"
        cache.apply(UserStatusMessage(isDelta: false, statuses: [UserStatus(userId: "agent", statusId: "Available", notes: "n", loggedIn: true, onPhone: false)]))
        var delta = UserStatus(userId: "agent", statusId: "Lunch")
        delta.named = ["userId", "statusId"]
        cache.apply(UserStatusMessage(isDelta: true, statuses: [delta]))
        #expect(cache.current?.statusId == "Lunch" && cache.current?.loggedIn == true && cache.current?.onPhone == false && cache.current?.notes == "n")
        // A snapshot replaces what it does not carry.
        cache.apply(UserStatusMessage(isDelta: false, statuses: [UserStatus(userId: "agent", statusId: "Away")]))
        #expect(cache.current?.loggedIn == nil && cache.current?.notes == nil)
    }

    @Test func aStatusDeltaWithoutStatusIdDecodesAndKeepsIt() throws {
        var cache = StatusCache()
        cache.userId = "agent"
        let snapshot = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:status:userStatusMessage","isDelta":false,"userStatusList":[{"userId":"agent","statusId":"Available","loggedIn":true,"onPhone":false,"notes":"n"}]}"#.utf8))
        let delta = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:status:userStatusMessage","isDelta":true,"userStatusList":[{"userId":"agent","onPhone":true,"notes":null}]}"#.utf8))
        guard case .userStatus(let s) = snapshot, case .userStatus(let d) = delta else {
            Issue.record("not status messages")
            return
        }
        cache.apply(s)
        cache.apply(d)
        #expect(cache.current?.statusId == "Available" && cache.current?.onPhone == true && cache.current?.loggedIn == true && cache.current?.notes == nil)
    }

    @Test func aCatalogueDeltaKeepsTheFlagsItDoesNotName() throws {
        var cache = StatusCache()
        let full = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:status:statusMessagesMessage","isDelta":false,"statusMessagesAdded":[{"statusId":"Available","messageText":"Available","isSelectableStatus":true,"isAcdStatus":true}]}"#.utf8))
        let delta = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:status:statusMessagesMessage","isDelta":true,"statusMessagesChanged":[{"statusId":"Available","messageText":"Ready"}]}"#.utf8))
        guard case .statusMessages(let f) = full, case .statusMessages(let d) = delta else {
            Issue.record("not catalogue messages")
            return
        }
        cache.apply(f)
        cache.apply(d)
        let s = cache.status("available")
        #expect(s?.messageText == "Ready" && s?.flag("isAcdStatus") == true && s?.flag("isSelectableStatus") == true)
    }

    @Test func anAlertingDeltaKeepsTheCallersName() throws {
        var cache = AlertingCache()
        let start = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":false,"alertingInteractionDetails":[{"interactionId":"1","alertAction":1,"name":"ACME","address":"+1317","interactionType":"Call","attributes":{"A":"1","B":"2"}}]}"#.utf8))
        let delta = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":true,"alertingInteractionDetails":[{"interactionId":"1","alertAction":1,"autoAnswer":true,"attributes":{"B":null,"C":"3"}}]}"#.utf8))
        guard case .interactionAlerting(let s) = start, case .interactionAlerting(let d) = delta else {
            Issue.record("not alerting messages")
            return
        }
        cache.apply(s)
        cache.apply(d)
        let a = cache.current.first
        #expect(a?.name == "ACME" && a?.address == "+1317" && a?.interactionType == "Call" && a?.autoAnswer == true)
        #expect(sameAttributes(a?.attributes ?? [], [("A", "1"), ("C", "3")]))
    }

    @Test func aQueueDeltaNullRemovesTheAttribute() throws {
        var cache = InteractionsCache()
        let snapshot = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:queues:queueContentsMessage","isDelta":false,"subscriptionId":"q","interactionsAdded":[{"interactionId":"1","attributes":{"Eic_State":"A","Eic_RemoteName":"Ann"}}]}"#.utf8))
        let delta = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:queues:queueContentsMessage","isDelta":true,"subscriptionId":"q","interactionsChanged":[{"interactionId":"1","attributes":{"Eic_RemoteName":null,"Eic_State":"C"}}]}"#.utf8))
        guard case .queueContents(let s) = snapshot, case .queueContents(let d) = delta else {
            Issue.record("not queue messages")
            return
        }
        _ = cache.apply(s)
        _ = cache.apply(d)
        #expect(cache["1"]?["Eic_State"] == "C" && cache["1"]?["Eic_RemoteName"] == nil)
    }

    @Test func aUsersDeltaNullClearsTheDisplayNameAndKeepsTheRest() throws {
        var cache = UsersCache()
        let snapshot = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:configuration.people:usersMessage","isDelta":false,"added":[{"configurationId":{"id":"u1","displayName":"Ann"},"extension":"7001","statusText":"Available"}]}"#.utf8))
        let rename = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:configuration.people:usersMessage","isDelta":true,"changed":[{"configurationId":{"id":"u1"},"statusText":"Lunch"}]}"#.utf8))
        let clear = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:configuration.people:usersMessage","isDelta":true,"changed":[{"configurationId":{"id":"u1","displayName":null}}]}"#.utf8))
        guard case .users(let s) = snapshot, case .users(let r) = rename, case .users(let c) = clear else {
            Issue.record("not users messages")
            return
        }
        cache.apply(s)
        cache.apply(r)
        #expect(cache.user("u1")?.displayName == "Ann" && cache.user("u1")?.properties.count == 2)
        cache.apply(c)
        #expect(cache.user("u1")?.displayName == nil && cache.user("u1")?.properties.count == 2)
    }

    /// A conference child's `conferenceParentId` comes on the entry that adds
    /// it; a delta that changes the child without naming it keeps it; a
    /// snapshot takes what it says.
    @Test func aQueueDeltaKeepsTheConferenceParent() throws {
        func queue(_ text: String) throws -> QueueContentsMessage {
            guard case .queueContents(let m) = try ICWSMessage.decode(text: Array(text.utf8)) else { throw DecodeFailure() }
            return m
        }
        var cache = InteractionsCache()
        _ = cache.apply(try queue(#"{"__type":"urn:inin.com:queues:queueContentsMessage","isDelta":true,"subscriptionId":"q","interactionsAdded":[{"interactionId":"P","attributes":{"Eic_State":"C"}},{"interactionId":"1","conferenceParentId":"P","attributes":{"Eic_State":"C"}}]}"#))
        #expect(cache["1"]?.conferenceParentId == "P")
        _ = cache.apply(try queue(#"{"__type":"urn:inin.com:queues:queueContentsMessage","isDelta":true,"subscriptionId":"q","interactionsChanged":[{"interactionId":"1","attributes":{"Eic_State":"H"}}]}"#))
        #expect(cache["1"]?.conferenceParentId == "P" && cache["1"]?["Eic_State"] == "H")
        _ = cache.apply(try queue(#"{"__type":"urn:inin.com:queues:queueContentsMessage","isDelta":false,"subscriptionId":"q","interactionsAdded":[{"interactionId":"1","attributes":{"Eic_State":"C"}}]}"#))
        #expect(cache["1"]?.conferenceParentId == nil, "a snapshot says the whole entry")
        // The object's property: the parent's path while that entry is on the queue, else "/".
        let child = InteractionEntry(id: "1", attributes: [], conferenceParentId: "P")
        func parent(_ known: Bool) -> DBusValue? {
            Dictionary(ContractMaps.interactionProperties(child, .init(parentKnown: known)).map { ($0.0.name, $0.1) }, uniquingKeysWith: { a, _ in a })["ConferenceParent"]
        }
        #expect(parent(true) == .objectPath(BridgeNames.interactionPath("P") ?? ""))
        #expect(parent(false) == .objectPath("/"))
    }

    struct DecodeFailure: Error {}
}
