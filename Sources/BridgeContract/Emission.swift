import DBusKit
import ICWSProtocol

/// One signal as the bridge emits it.
public struct SignalEmission: Sendable {
    public var spec: SignalSpec
    public var arguments: [DBusValue]
    public var interface: String { spec.interface }
    public var member: String { spec.name }
}

/// The one path from a decoded ICWS message to the signals that publish it
/// (one per message, or several in order when it passes 8 MiB). The bridge
/// emits exactly these, and the bus fuzzer checks exactly these.
public enum Emission {
    public static func signals(for message: ICWSMessage) -> [SignalEmission] {
        switch message {
        case .stationConnectionStateChange(let m):
            return [
                SignalEmission(
                    spec: Contract.Station.stateChanged,
                    arguments: [ContractMaps.stationInfo(m.previousStationInfo), ContractMaps.stationInfo(m.newStationInfo), .bool(m.isDelta)])
            ]
        case .interactionAlerting(let m):
            return SignalSplitter.runs(m.details.map(ContractMaps.alertDetail)).enumerated().map { i, run in
                SignalEmission(
                    spec: Contract.Interactions.alertingSignal, arguments: [.vardicts(run), .bool(i == 0 ? m.isDelta : true)])
            }
        case .users(let m):
            return SignalSplitter.usersChanged(
                added: m.added.map(ContractMaps.user), changed: m.changed.map(ContractMaps.user), removed: m.removed, isDelta: m.isDelta
            ).map { SignalEmission(spec: Contract.Users.changed, arguments: $0) }
        // Queue contents become objects (InterfacesAdded, PropertiesChanged, InterfacesRemoved), not a signal of their own.
        // Status messages become the Status properties; the others change state only.
        case .connectionStateChange, .asyncOperationCompleted, .subscriptionState, .queueContents, .queueSubscriptionState, .userStatus,
            .statusMessages, .statusAccess, .effectiveStationChange, .unknown:
            return []
        }
    }

    /// The `Alerting` value in full (as Get reads it).
    public static func alertingValue(_ cache: AlertingCache) -> DBusValue {
        .vardicts(cache.current.map(ContractMaps.alertDetail))
    }

    /// The `GetUsers` reply value.
    public static func usersValue(_ cache: UsersCache) -> DBusValue {
        .vardicts(cache.all.map(ContractMaps.user))
    }
}
