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
    /// The one model of what the main object shows (its properties are read from it).
    private let state = Mutex(BridgeModel())
    /// The agent's own interactions as objects (contract v1.1).
    let interactions: InteractionObjects
    /// The agent's user status (contract v1.1).
    let status: StatusService
    /// The user's workgroups as objects (contract v1.2).
    let workgroups: WorkgroupObjects
    /// Called on every session status change (for sd_notify STATUS=).
    private let statusObserver: (@Sendable (SessionStatus, StationStatus) -> Void)?
    /// Told how many entries each piece of work handled: 1 for most messages,
    /// the number of users for a users message or a GetUsers reply.
    private let workObserver: (@Sendable (Int) -> Void)?

    public init(
        supervisor: SessionSupervisor, connection: BusConnection, logger: Logger,
        workObserver: (@Sendable (Int) -> Void)? = nil,
        statusObserver: (@Sendable (SessionStatus, StationStatus) -> Void)? = nil,
        completionTimeout: Duration = .seconds(30),
        workgroupsEnabled: Bool = true
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
        workgroups = try WorkgroupObjects(connection: connection, main: object, supervisor: supervisor, logger: logger, enabled: workgroupsEnabled)
        interactions.useWrapUpCodes { [weak workgroups] in workgroups?.wrapUpCodes(of: $0) }
        // One ObjectManager for the interaction and the workgroup objects.
        object.onMethod(Contract.ObjectManager.getManagedObjects) { [weak self] _ throws(BusError) in
            guard let self else { return [.dict(key: "o", value: "a{sa{sv}}", [])] }
            return [.dict(key: "o", value: "a{sa{sv}}", self.interactions.managedEntries() + self.workgroups.managedEntries())]
        }
        // No store of values in the object: Get and GetAll read the model (and
        // the status service for `Status`), on demand.
        object.readProperties { [weak self] interface, name in
            guard let self else { return nil }
            if interface == BridgeNames.status { return self.status.property(name) }
            return self.state.withLock { $0.property(interface, name) }
        }
        installHandlers()
        // Every method of the XML is served (the typed handler protocols make
        // this a build error; this holds any hand-bound rest), or the daemon does not start.
        let problems = (object.unboundMethods + interactions.unboundMethods + workgroups.unboundMethods).map { "method \($0) has no handler" }
        guard problems.isEmpty else { throw .failed("the D-Bus contract does not hold: " + problems.joined(separator: "; ")) }
    }

    /// Exports the object and takes the well-known name (fails when it is taken).
    public func publish() async throws(BusError) {
        connection.export(object)
        try await connection.requestName(BridgeNames.busName)
    }

    public var signalsEmitted: UInt64 { state.withLock { $0.signalsEmitted } }

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
    public func coalescing(_ body: () -> Void) { workgroups.holding { connection.coalescing(body) } }

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
                workgroups.sessionChanged(s)
                // Only what changed goes out: the model compares its renderings.
                try object.announce(state.withLock { $0.apply(s, st) })
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
            try object.announce(
                state.withLock { model in
                    model.update([.station]) { model in
                        if m.isDelta { model.stationInfo.apply(delta: m.newStationInfo) } else { model.stationInfo = m.newStationInfo }
                    }
                })
        case .interactionAlerting(let m):
            let (changed, count) = state.withLock { s -> (Bool, Int) in
                (s.alerting.apply(m), s.alerting.count)
            }
            // Nothing changed (a stop for a call not alerting here): no PropertiesChanged.
            if changed { try publishAlerting(count: count) }
        case .users(let m):
            try object.announce(state.withLock { model in model.update([.users]) { $0.users.apply(m) } })
        case .queueContents(let m):
            try interactions.apply(m)
        case .userStatus, .statusMessages, .statusAccess, .asyncOperationCompleted:
            _ = try status.handle(message)
        case .effectiveStationChange:
            break  // the supervisor reads the station anew and sends its info
        case .queueSubscriptionState(let m):
            logger.warning(
                "queue subscription state", metadata: ["icws.subscription": "\(m.subscriptionId ?? "")", "icws.state": "\(m.state)", "icws.error": "\(m.error?.serverText ?? "")"])
        case .userActivation(let m):
            try workgroups.apply(m)
        case .statisticValues(let m):
            workgroups.apply(m)
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
                try object.announce([Contract.Interactions.Values.alerting(value)])
                return
            }
        }
        // Get and GetAll read it from the model.
        try object.announce(Contract.Interactions.alerting.interface, changed: [], invalidated: [Contract.Interactions.alerting.name])
    }
}
