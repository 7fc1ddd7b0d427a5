import DBusKit
import ICWS
import Logging
import Synchronization

/// Puts the ICWS session on the bus: supervisor events become properties and
/// signals (one signal per ICWS message, in arrival order), bus methods become
/// ICWS calls that reply once the server answered.
public final class BridgeService: SupervisorEventSink {
    public let object: BusObject
    let supervisor: SessionSupervisor
    let connection: BusConnection
    let logger: Logger
    private let state = Mutex(State())
    /// The agent's own interactions as objects (contract v1.1).
    let interactions: InteractionObjects
    /// The agent's user status (contract v1.1).
    let status: StatusService
    /// Called on every session status change (for sd_notify STATUS=).
    private let statusObserver: (@Sendable (SessionStatus, StationStatus) -> Void)?
    /// Told how many entries each piece of work handled: 1 for most messages,
    /// the number of users for a users message or a GetUsers reply.
    private let workObserver: (@Sendable (Int) -> Void)?

    struct State {
        var alerting = AlertingCache()
        var users = UsersCache()
        /// `Station.Info`: the last snapshot with every delta since merged into it.
        var stationInfo = StationInformation()
        var signalsEmitted: UInt64 = 0
    }

    public init(
        supervisor: SessionSupervisor, connection: BusConnection, logger: Logger,
        workObserver: (@Sendable (Int) -> Void)? = nil,
        statusObserver: (@Sendable (SessionStatus, StationStatus) -> Void)? = nil,
        completionTimeout: Duration = .seconds(30)
    ) throws(BusError) {
        self.supervisor = supervisor
        self.connection = connection
        self.logger = logger
        self.workObserver = workObserver
        self.statusObserver = statusObserver
        let interfaces = try BridgeNames.interfaces()
        object = BusObject(path: BridgeNames.objectPath, interfaces: interfaces)
        interactions = try InteractionObjects(connection: connection, main: object, supervisor: supervisor, logger: logger)
        status = StatusService(main: object, supervisor: supervisor, logger: logger, completionTimeout: completionTimeout)
        try publishInitialProperties()
        try status.publishInitial()
        installHandlers()
        // Every method of the XML is served (the typed handler protocols make
        // this a build error; this holds any hand-bound rest), or the daemon does not start.
        let problems = (object.unboundMethods + interactions.unboundMethods).map { "method \($0) has no handler" }
        guard problems.isEmpty else { throw .failed("the D-Bus contract does not hold: " + problems.joined(separator: "; ")) }
    }

    /// Exports the object and takes the well-known name (fails when it is taken).
    public func publish() async throws(BusError) {
        connection.export(object)
        try await connection.requestName(BridgeNames.busName)
    }

    public var signalsEmitted: UInt64 { state.withLock { $0.signalsEmitted } }

    private func publishInitialProperties() throws(BusError) {
        try object.setProperties(sessionProperties(SessionStatus()))
        try object.setProperties([
            Contract.Station.Values.connected(false), Contract.Station.Values.ready(false), Contract.Station.Values.info(.vardict([])),
            Contract.Station.Values.settings(.vardict([])), Contract.Interactions.Values.alerting(.vardicts([])), Contract.Users.Values.count(0),
        ])
    }

    private func sessionProperties(_ s: SessionStatus) -> [(PropertySpec, DBusValue)] {
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

    // MARK: Methods

    private func installHandlers() {
        Contract.Session.bind(SessionMethods(supervisor: supervisor), to: object)
        Contract.Station.bind(StationMethods(supervisor: supervisor, logger: logger), to: object)
        Contract.Users.bind(UsersMethods(service: self), to: object)
    }

    /// `Session`, typed (the generated `SessionHandler`).
    struct SessionMethods: SessionHandler {
        let supervisor: SessionSupervisor
        func reconnect() async throws(BusError) { supervisor.reconnect() }
        func disconnect() async throws(BusError) { await supervisor.disconnect() }
    }

    /// `Station`, typed (the generated `StationHandler`).
    struct StationMethods: StationHandler {
        let supervisor: SessionSupervisor
        let logger: Logger

        func connect(_ settings: DBusValue) async throws(BusError) {
            let settings = try ContractMaps.parseConnect(settings)
            do throws(ICWSError) { try await supervisor.connectStation(settings) } catch { throw ContractMaps.busError(error) }
        }

        func disconnect() async throws(BusError) {
            let station = await supervisor.station
            guard station.connected || station.requested != nil else {
                throw ContractMaps.busError(StationCommandError.noStation)
            }
            do throws(ICWSError) { try await supervisor.disconnectStation() } catch { throw ContractMaps.busError(error) }
        }

        func setReady(_ ready: Bool) async throws(BusError) {
            do throws(StationCommandError) { try await supervisor.setReady(ready) } catch { throw ContractMaps.busError(error) }
        }

        func getSipCredentials() async throws(BusError) -> (String, String, String) {
            let info: StationInformation
            do throws(StationCommandError) { info = try await supervisor.stationInformation() } catch { throw ContractMaps.busError(error) }
            logger.info("SIP credentials handed out", metadata: ["dbus.sender": "\(BusCaller.sender)"])
            return (info.sipUser ?? "", info.sipPassword?.value ?? "", info.sipAddress ?? "")
        }
    }

    /// `Users`, typed (the generated `UsersHandler`).
    struct UsersMethods: UsersHandler {
        let service: BridgeService
        func getUsers() async throws(BusError) -> DBusValue {
            let users = service.state.withLock { $0.users }
            defer { service.workObserver?(users.count) }
            return Emission.usersValue(users)
        }
    }

    // MARK: Events → bus

    /// Runs `body`, sending what it emits on the bus together at its end
    /// (for the messages of one read of the stream).
    public func coalescing(_ body: () -> Void) { connection.coalescing(body) }

    /// Returns once the bus connection's unwritten signals are few enough
    /// (see `BusConnection.waitForRoom`): the message source waits here
    /// between reads.
    public func waitForRoom() async { await connection.waitForRoom() }

    /// Puts one supervisor event on the bus.
    public func handle(_ event: SupervisorEvent) {
        do throws(BusError) {
            switch event {
            case .state(let s, let st):
                status.setUser(s.userId)
                // Stopped (not reconnecting): the calls of the ended session are gone.
                if s.state == .stopped, interactions.count > 0 { try interactions.removeAll() }
                // Only what changed goes out (`setProperties` compares with what the bus has).
                try object.setProperties(
                    sessionProperties(s) + [
                        Contract.Station.Values.connected(st.connected), Contract.Station.Values.ready(st.ready),
                        Contract.Station.Values.settings(ContractMaps.settings(st.requested)),
                    ])
                statusObserver?(s, st)
            case .message(let m):
                defer { workObserver?(m.entryCount) }
                try handle(message: m)
            case .malformedMessage:
                break  // logged by the supervisor
            }
        } catch {
            logger.error("could not publish on the bus", metadata: ["error": "\(error)"])
        }
    }

    private func handle(message: ICWSMessage) throws(BusError) {
        for signal in Emission.signals(for: message) {
            try signal.emit(on: object)
            countSignal()
        }
        switch message {
        case .stationConnectionStateChange(let m):
            let info = state.withLock { s -> StationInformation in
                if m.isDelta { s.stationInfo.apply(delta: m.newStationInfo) } else { s.stationInfo = m.newStationInfo }
                return s.stationInfo
            }
            try object.setProperties([Contract.Station.Values.info(ContractMaps.stationInfo(info))])
        case .interactionAlerting(let m):
            let (changed, count) = state.withLock { s -> (Bool, Int) in
                (s.alerting.apply(m), s.alerting.count)
            }
            // Nothing changed (a stop for a call not alerting here): no PropertiesChanged.
            if changed { try publishAlerting(count: count) }
        case .users(let m):
            let count = state.withLock { s -> Int in
                s.users.apply(m)
                return s.users.count
            }
            try object.setProperties([Contract.Users.Values.count(UInt32(clamping: count))])
        case .queueContents(let m):
            try interactions.apply(m)
        case .userStatus, .statusMessages, .statusAccess, .asyncOperationCompleted:
            _ = try status.handle(message)
        case .effectiveStationChange:
            break  // the supervisor reads the station anew and sends its info
        case .queueSubscriptionState(let m):
            logger.warning(
                "queue subscription state", metadata: ["icws.subscription": "\(m.subscriptionId ?? "")", "icws.state": "\(m.state)", "icws.error": "\(m.error?.serverText ?? "")"])
        case .connectionStateChange, .subscriptionState, .unknown:
            break
        }
    }

    private func countSignal() { state.withLock { $0.signalsEmitted += 1 } }

    /// `Alerting` carries its value in `PropertiesChanged` while the set is
    /// small; a large one is announced as invalidated and read on demand, so
    /// that a burst of N alerting interactions costs O(N), not O(N²).
    private func publishAlerting(count: Int) throws(BusError) {
        if count <= BusLimits.propertyValueEntries {
            let value = Emission.alertingValue(state.withLock { $0.alerting })
            if value.encodedSizeBound <= BusLimits.propertyValueBytes {
                try object.setProperties([Contract.Interactions.Values.alerting(value)])
                return
            }
        }
        try object.invalidateProperty(Contract.Interactions.alerting.interface, Contract.Interactions.alerting.name) { [weak self] in
            Emission.alertingValue(self?.state.withLock { $0.alerting } ?? AlertingCache())
        }
    }
}
