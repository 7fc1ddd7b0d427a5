import BridgeContract
import ICWSProtocol
import DBusKit
import Testing

/// Depth, size and burst limits of the mapping (docs/boundaries.md).
@Suite struct LimitsTests {
    func nested(_ depth: Int) -> JSONValue {
        var v: JSONValue = "x"
        for i in 0..<depth { v = i % 2 == 0 ? .array([v]) : .object([("k", v)]) }
        return v
    }

    @Test func deepValuesBecomeTheirJSONText() {
        #expect(JSONToDBus.value(nested(16))?.signature == "a{sv}", "16 containers keep their shape")
        let deep = nested(17)
        #expect(JSONToDBus.value(deep) == .string(deep.serialized()))
        // Whatever the depth, the user map passes libdbus's own validation.
        for depth in [15, 16, 17, 40, 200] {
            let user = ContractMaps.user(UserEntry(id: "u", displayName: "U", properties: [("p", nested(depth))]))
            let check = WireCheck.signal(
                path: BridgeNames.objectPath, interface: BridgeNames.users, member: "UsersChanged",
                arguments: [.vardicts([user]), .vardicts([user]), .strings([]), .bool(true)])
            #expect((try? check.get()) != nil, "depth \(depth): \(check)")
        }
    }

    @Test func oneEntryStaysWithinItsBudget() {
        let big = String(repeating: "b", count: 20 << 20)
        let user = ContractMaps.user(UserEntry(id: "u", properties: [("a", .string(big)), ("b", .array(Array(repeating: 1, count: 2_000_000)))]))
        #expect(user.encodedSizeBound <= BusLimits.entryBytes + 4096)
        #expect(user["a"]?.stringValue?.hasSuffix("…") == true, "cut, and marked")
        #expect(user["b"]?.stringValue?.hasSuffix("…") == true, "what does not fit becomes cut JSON text")
        var station = StationInformation()
        station.id = big
        station.extension = big
        station.allowedMediaTypes = Array(repeating: 1, count: 3_000_000)
        let info = ContractMaps.stationInfo(station)
        #expect(info.encodedSizeBound <= BusLimits.entryBytes + 4096)
        #expect((try? WireCheck.signal(path: "/a", interface: "a.b", member: "C", arguments: [user]).get()) != nil)
    }

    @Test func signalsSplitInOrderAndTheRestAreDeltas() {
        let users = (0..<3000).map { i in ContractMaps.user(UserEntry(id: "u\(i)", properties: [("n", .string(String(repeating: "n", count: 10_000)))])) }
        let signals = SignalSplitter.usersChanged(added: users, changed: [], removed: ["gone"], isDelta: false)
        #expect(signals.count >= 4)
        #expect(signals.first?[3] == .bool(false))
        #expect(signals.dropFirst().allSatisfy { $0[3] == .bool(true) })
        #expect(signals.allSatisfy { $0.reduce(0) { $0 + $1.encodedSizeBound } <= BusLimits.signalSplitBytes + 20_000 })
        #expect(signals.flatMap { $0[0].arrayElements ?? [] } == users)
        #expect(signals.last?[2] == .strings(["gone"]))
        let empty = SignalSplitter.usersChanged(added: [], changed: [], removed: [], isDelta: true)
        #expect(empty.count == 1, "an empty message is still one signal")
    }

    @Test func encodedSizeBoundIsAnUpperBound() throws {
        let values: [DBusValue] = [
            .vardicts([ContractMaps.user(UserEntry(id: "u", displayName: "U", properties: [("p", nested(10)), ("n", 1.5), ("b", true)]))]),
            .strings(["a", "bb", ""]), .bool(true), .uint32(7), .stringDict([("k", "v")]),
        ]
        let wire = try WireCheck.signal(path: "/a", interface: "a.b", member: "C", arguments: values).get()
        #expect(values.reduce(0) { $0 + $1.encodedSizeBound } >= wire - 200, "the header is not in the bound")
    }

    @Test func cachesStayLinearUnderBursts() {
        var alerting = AlertingCache()
        let n = 50_000
        for i in 0..<n { alerting.apply(InteractionAlertingMessage(isDelta: true, details: [InteractionAlertDetail(interactionId: "\(i)")])) }
        for i in stride(from: 0, to: n, by: 2) {
            alerting.apply(InteractionAlertingMessage(isDelta: true, details: [InteractionAlertDetail(interactionId: "\(i)", alertAction: 2)]))
        }
        #expect(alerting.count == n / 2)
        #expect(alerting.current.map(\.interactionId) == stride(from: 1, to: n, by: 2).map { "\($0)" }, "order kept through compaction")
        var users = UsersCache()
        users.apply(UsersMessage(isDelta: false, added: (0..<n).map { UserEntry(id: "u\($0)") }))
        for i in 0..<(n / 2) { users.apply(UsersMessage(isDelta: true, removed: ["u\(i)"])) }
        #expect(users.count == n / 2 && users.all.first?.id == "u\(n / 2)")
    }
}
