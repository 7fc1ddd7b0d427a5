import DBusKit
import ICWSProtocol

/// One signal as the bridge emits it.
public struct SignalEmission: Sendable {
    public var spec: SignalSpec
    let body: Body
    public var interface: String { spec.interface }
    public var member: String { spec.name }

    enum Body: Sendable {
        case values([DBusValue])
        /// One `InteractionAlerting` of the messages' details; `itemsBound` is
        /// the sum of their maps' `encodedSizeBound`.
        case alerting(ArraySlice<InteractionAlertDetail>, isDelta: Bool, itemsBound: Int)
    }

    init(spec: SignalSpec, arguments: [DBusValue]) {
        self.spec = spec
        body = .values(arguments)
    }

    init(spec: SignalSpec, body: Body) {
        self.spec = spec
        self.body = body
    }

    /// The arguments as values.
    public var arguments: [DBusValue] {
        switch body {
        case .values(let a): return a
        case .alerting(let details, let isDelta, _): return [.vardicts(details.map(ContractMaps.alertDetail)), .bool(isDelta)]
        }
    }

    /// `encodedSizeBound` of the arguments, summed.
    public var sizeBound: Int {
        switch body {
        case .values(let a): return a.reduce(0) { $0 + $1.encodedSizeBound }
        case .alerting(_, _, let items): return DBusValue.vardicts([]).encodedSizeBound + items + DBusValue.bool(true).encodedSizeBound
        }
    }

    /// The arguments written straight into the message, for the signals whose
    /// values exist for that message alone (an alerting burst builds no tree);
    /// nil for the others. What it writes is `arguments`, byte for byte.
    public var direct: ((inout ArgumentWriter) -> Void)? {
        guard case .alerting(let details, let isDelta, _) = body else { return nil }
        return { w in
            w.vardicts { a in
                for d in details { a.vardict { ContractMaps.alertDetail(d, into: &$0) } }
            }
            w.bool(isDelta)
        }
    }

    /// Emits it on `object`.
    public func emit(on object: BusObject) throws(BusError) {
        if let direct {
            try object.emit(spec.interface, spec.name, sizeBound: sizeBound, direct)
        } else {
            try object.emit(spec.interface, spec.name, arguments)
        }
    }
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
                    spec: Contract.Station.stationConnectionStateChanged,
                    arguments: [ContractMaps.stationInfo(m.previousStationInfo), ContractMaps.stationInfo(m.newStationInfo), .bool(m.isDelta)])
            ]
        case .interactionAlerting(let m):
            return SignalSplitter.runs(costs: m.details.map(ContractMaps.alertDetailSizeBound)).enumerated().map { i, run in
                SignalEmission(
                    spec: Contract.Interactions.interactionAlerting,
                    body: .alerting(m.details[run.range], isDelta: i == 0 ? m.isDelta : true, itemsBound: run.cost))
            }
        case .users(let m):
            return SignalSplitter.usersChanged(
                added: m.added.map(ContractMaps.user), changed: m.changed.map(ContractMaps.user), removed: m.removed, isDelta: m.isDelta
            ).map { SignalEmission(spec: Contract.Users.usersChanged, arguments: $0) }
        // Queue contents become objects (InterfacesAdded, PropertiesChanged, InterfacesRemoved), not a signal of their own.
        // Status messages become the Status properties; activations and
        // statistics the Workgroup objects' properties; the others change state only.
        case .connectionStateChange, .asyncOperationCompleted, .subscriptionState, .queueContents, .queueSubscriptionState, .userStatus,
            .statusMessages, .statusAccess, .effectiveStationChange, .userActivation, .statisticValues, .unknown:
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
