@testable import Bridge
import BridgeContract
import DBusKit
import ICWS
import Testing

/// The bridge's one model: what the main object shows is rendered from it,
/// and an event announces exactly what its rendering changed.
@Suite struct BridgeModelTests {
    static func connected(_ on: Bool, ready: Bool = false) -> StationStatus {
        var st = StationStatus()
        st.connected = on
        st.ready = ready
        return st
    }

    @Test func anEventThatChangesNothingAnnouncesNothing() {
        var model = BridgeModel()
        var s = SessionStatus()
        s.userId = "agent"
        let first = model.apply(s, Self.connected(true))
        #expect(first.contains { $0.0 == Contract.Session.userId && $0.1 == .string("agent") })
        #expect(first.contains { $0.0 == Contract.Station.connected && $0.1 == .bool(true) })
        #expect(model.apply(s, Self.connected(true)).isEmpty, "the same state twice: no PropertiesChanged")
        let ready = model.apply(s, Self.connected(true, ready: true))
        #expect(ready.map(\.0) == [Contract.Station.ready], "a ready toggle announces Ready alone")
    }

    @Test func everyPropertyIsReadFromTheModel() {
        var model = BridgeModel()
        // Every property of the main object's interfaces (Status apart: its service renders it) has a value from the start.
        for spec in [Contract.Session.state, Contract.Session.subscriptions, Contract.Station.connected, Contract.Station.info, Contract.Users.count, Contract.Interactions.alerting] {
            #expect(model.property(spec.interface, spec.name)?.signature == spec.type, "\(spec.name)")
        }
        _ = model.update([.users]) { _ in }
        #expect(model.property(BridgeNames.users, "Count") == .uint32(0))
        #expect(model.property(BridgeNames.users, "NoSuchProperty") == nil)
        #expect(model.property("org.example.Nothing", "Count") == nil)
    }

    /// Connected and Info come from one value: no Info while the station is
    /// not connected, and a station that went away takes its Info along.
    @Test func stationInfoFollowsConnected() {
        var model = BridgeModel()
        var info = StationInformation()
        info.id = "7001"
        let early = model.update([.station]) { $0.stationInfo = info }
        #expect(early.isEmpty, "info before the station is connected is held, not shown")
        #expect(model.property(BridgeNames.station, "Info") == .vardict([]))
        let up = model.apply(SessionStatus(), Self.connected(true))
        #expect(up.contains { $0.0 == Contract.Station.info && $0.1["id"] == .string("7001") }, "\(up)")
        var delta = StationInformation()
        delta.ringAlways = true
        delta.named = ["ringAlways"]
        let merged = model.update([.station]) { $0.stationInfo.apply(delta: delta) }
        #expect(merged.count == 1 && merged[0].1["id"] == .string("7001"), "a delta keeps what it does not name")
        let down = model.apply(SessionStatus(), Self.connected(false))
        #expect(down.contains { $0.0 == Contract.Station.info && $0.1 == .vardict([]) })
        #expect(model.apply(SessionStatus(), Self.connected(true)).allSatisfy { $0.0 != Contract.Station.info }, "the old Info does not come back with a new connection")
    }
}
