import DBusKit
import ICWS

/// What the main object shows, in one place: a plain value that takes the
/// session's events and renders the properties of `Session`, `Station`,
/// `Interactions` and `Users` on demand (the way hostnamed reads its
/// properties from one context). The bus object keeps no copy: Get and GetAll
/// read from here, and an event announces what its rendering changed.
struct BridgeModel: Sendable {
    var session = SessionStatus()
    var station = StationStatus()
    /// The last station snapshot with every delta since merged into it; shown
    /// as `Station.Info` while the station is connected, and forgotten when it
    /// is not (Connected and Info come from this one value).
    var stationInfo = StationInformation()
    var alerting = AlertingCache()
    var users = UsersCache()
    var signalsEmitted: UInt64 = 0

    /// The groups of properties an event can change (each rendered apart:
    /// an alerting message renders none of them).
    enum Group { case session, station, users }

    func render(_ group: Group) -> [(PropertySpec, DBusValue)] {
        switch group {
        case .session: return Self.sessionProperties(session)
        case .station:
            typealias P = Contract.Station.Values
            return [
                P.connected(station.connected), P.ready(station.ready), P.settings(ContractMaps.settings(station.requested)),
                P.info(station.connected ? ContractMaps.stationInfo(stationInfo) : .vardict([])),
            ]
        case .users: return [Contract.Users.Values.count(UInt32(clamping: users.count))]
        }
    }

    /// A property's value now (the `BusObject` reader of the main object).
    func property(_ interface: String, _ name: String) -> DBusValue? {
        switch interface {
        case BridgeNames.session: return Rendered.value(render(.session), interface, name)
        case BridgeNames.station: return Rendered.value(render(.station), interface, name)
        case BridgeNames.users: return Rendered.value(render(.users), interface, name)
        case Contract.Interactions.alerting.interface where name == Contract.Interactions.alerting.name:
            return Emission.alertingValue(alerting)
        default: return nil
        }
    }

    /// Applies `change` and returns the properties of `groups` whose rendering changed.
    mutating func update(_ groups: [Group], _ change: (inout BridgeModel) -> Void) -> [(PropertySpec, DBusValue)] {
        let before = groups.flatMap(render)
        change(&self)
        return Rendered.changes(from: before, to: groups.flatMap(render))
    }

    /// The session and the station as the supervisor reports them.
    mutating func apply(_ s: SessionStatus, _ st: StationStatus) -> [(PropertySpec, DBusValue)] {
        update([.session, .station]) { m in
            // A station that is gone takes its information with it; the next
            // connection's snapshot brings it back.
            if m.station.connected, !st.connected { m.stationInfo = StationInformation() }
            m.session = s
            m.station = st
        }
    }

    static func sessionProperties(_ s: SessionStatus) -> [(PropertySpec, DBusValue)] {
        typealias P = Contract.Session
        // Server text (display name, reasons) is cut to one short line here.
        return [
            P.Values.state(s.state.rawValue), P.Values.server(s.server), P.Values.userId(s.userId.singleLine(maxBytes: 1024)),
            P.Values.userDisplayName(s.userDisplayName.singleLine(maxBytes: 1024)), P.Values.messagingMode(s.messagingMode),
            P.Values.lastError(s.lastError.singleLine(maxBytes: 2048)), P.Values.reconnectCount(s.reconnectCount),
            P.Values.features(.dict(key: "s", value: "u", s.features.sorted { $0.key < $1.key }.prefix(256).map {
                .init(.string($0.key.singleLine(maxBytes: 256)), .uint32(UInt32(clamping: $0.value)))
            })),
            P.Values.subscriptions(.dict(key: "s", value: "u", s.subscriptions.sorted { $0.key < $1.key }.map { .init(.string($0.key), .uint32($0.value)) })),
        ]
    }
}
