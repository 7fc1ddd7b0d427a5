import BridgeContract
import ICWSProtocol
import DBusKit
import Logging

/// Where the notifier listens and what its notifications look like.
public struct NotifierOptions: Sendable {
    /// The bus icws-bridged is on (system, session, or an address).
    public var bridgeBus: BusAddress
    /// The bus of the notification server (the desktop session's).
    public var notificationsBus: BusAddress
    public var style = NotificationStyle()
    /// Seconds to wait for the notification server's answers.
    public var notifyTimeout: Duration = .seconds(10)
    /// Seconds to wait for the bridge's answers (Pickup waits for the ICWS server).
    public var bridgeTimeout: Duration = .seconds(30)

    public init(bridgeBus: BusAddress, notificationsBus: BusAddress) {
        self.bridgeBus = bridgeBus
        self.notificationsBus = notificationsBus
    }
}

/// Why the notifier ended: a message for the journal and an exit status.
public struct NotifierFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// 69 (EX_UNAVAILABLE): a bus could not be reached or was lost.
    public var exitCode: Int32
    public var description: String { message }
    static func unavailable(_ message: String) -> NotifierFailure { NotifierFailure(message: message, exitCode: 69) }
}

/// The notifier's I/O: two bus connections, their signals merged in arrival
/// order into one stream, the state machine fed from it, and its actions
/// performed. It sleeps in that stream: no timer, no polling.
///
/// When either bus connection is lost, `run` throws (exit 69) and the user
/// unit restarts the notifier; when icws-bridged or the notification server
/// leave the bus and come back, it follows them (`NameOwnerChanged`).
public final class NotifierService: Sendable {
    enum Input: Sendable {
        case bridge(BusSignal)
        case notifications(BusSignal)
        case bridgeBusClosed
        case notificationsBusClosed
        case stop
    }

    public let options: NotifierOptions
    let logger: Logger
    let inputs: AsyncStream<Input>
    let feed: AsyncStream<Input>.Continuation

    public init(options: NotifierOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        (inputs, feed) = AsyncStream<Input>.makeStream(bufferingPolicy: .unbounded)
    }

    /// Asks `run` to close what it shows and return (SIGTERM, SIGINT).
    public func stop() { feed.yield(.stop) }

    /// Runs until `stop()` (returns) or until a bus connection is lost (throws).
    public func run() async throws(NotifierFailure) {
        let bridge = try await connect(options.bridgeBus, role: "icws-bridged's")
        let notifications: BusConnection
        do {
            notifications = try await connect(options.notificationsBus, role: "the notification server's")
        } catch {
            bridge.close()
            throw error
        }
        let loop = Loop(service: self, bridge: bridge, notifications: notifications)
        defer {
            bridge.close()
            notifications.close()
        }
        try await loop.run()
    }

    func connect(_ address: BusAddress, role: String) async throws(NotifierFailure) -> BusConnection {
        do {
            return try await BusConnection.connect(address, logger: logger)
        } catch {
            throw .unavailable("cannot connect to \(role) bus (\(address)): \(NotificationText.clean(error.message, limit: 512))")
        }
    }

    /// The work of one run: the owner of the machine and the known name owners.
    final class Loop {
        let service: NotifierService
        let bridge: BusConnection
        let notifications: BusConnection
        var machine: NotifierMachine
        /// The unique names now owning the bridge's and the server's names:
        /// only their signals count (a signal's path and interface can be sent
        /// by anyone; its sender cannot be forged).
        var bridgeOwner: String?
        var serverOwner: String?
        var logger: Logger { service.logger }
        var options: NotifierOptions { service.options }

        init(service: NotifierService, bridge: BusConnection, notifications: BusConnection) {
            self.service = service
            self.bridge = bridge
            self.notifications = notifications
            machine = NotifierMachine(style: service.options.style)
        }

        func run() async throws(NotifierFailure) {
            // The streams first, then the match rules: nothing falls in between.
            let feed = service.feed
            let bridgeSignals = bridge.signals()
            let serverSignals = notifications.signals()
            let forwarders = [
                Task {
                    for await s in bridgeSignals { feed.yield(.bridge(BusSignal(s))) }
                    feed.yield(.bridgeBusClosed)
                },
                Task {
                    for await s in serverSignals { feed.yield(.notifications(BusSignal(s))) }
                    feed.yield(.notificationsBusClosed)
                },
            ]
            defer { for t in forwarders { t.cancel() } }
            for rule in NotifierSignals.bridgeRules { try await addMatch(rule, on: bridge, bus: options.bridgeBus) }
            for rule in NotifierSignals.notificationRules { try await addMatch(rule, on: notifications, bus: options.notificationsBus) }
            logger.info(
                "icws-bridge-notify started",
                metadata: ["bridge_bus": "\(options.bridgeBus)", "notifications_bus": "\(options.notificationsBus)"])
            await serverAppeared()
            await syncBridge()
            for await input in service.inputs {
                switch input {
                case .bridge(let s):
                    if let owner = NotifierSignals.newOwner(of: BridgeNames.busName, in: s) {
                        await bridgeOwnerChanged(owner)
                    } else if s.sender == bridgeOwner, let event = NotifierSignals.bridgeEvent(s) {
                        await apply(event)
                    }
                case .notifications(let s):
                    if let owner = NotifierSignals.newOwner(of: NotificationsNames.busName, in: s) {
                        await serverOwnerChanged(owner)
                    } else if s.sender == serverOwner, let event = NotifierSignals.notificationEvent(s) {
                        await apply(event)
                    }
                case .bridgeBusClosed:
                    // Close what is shown first: resident notifications of a
                    // lost bridge would stay on screen with dead buttons.
                    await apply(.bridgeVanished)
                    throw .unavailable("lost the connection to icws-bridged's bus (\(options.bridgeBus))")
                case .notificationsBusClosed:
                    throw .unavailable("lost the connection to the notification server's bus (\(options.notificationsBus))")
                case .stop:
                    await apply(.stopping)
                    logger.info("icws-bridge-notify stopped")
                    return
                }
            }
        }

        func addMatch(_ rule: String, on connection: BusConnection, bus: BusAddress) async throws(NotifierFailure) {
            do {
                try await connection.addMatch(rule)
            } catch {
                throw .unavailable("cannot watch signals on the \(bus) bus: \(NotificationText.clean(error.message, limit: 512))")
            }
        }

        // MARK: Following the bridge and the server

        func bridgeOwnerChanged(_ owner: String) async {
            if bridgeOwner != nil, bridgeOwner != owner {
                logger.info("icws-bridged left the bus; its notifications are closed")
                bridgeOwner = nil
                await apply(.bridgeVanished)
            }
            if !owner.isEmpty, bridgeOwner == nil { await syncBridge() }
        }

        func serverOwnerChanged(_ owner: String) async {
            if serverOwner != nil, serverOwner != owner {
                logger.info("the notification server left the bus")
                serverOwner = nil
                await apply(.serverVanished)
            }
            if !owner.isEmpty, serverOwner == nil { await serverAppeared() }
        }

        /// Reads the bridge's whole state: its owner, its interaction objects, Do Not Disturb.
        /// The signals that arrive meanwhile wait in the stream and are applied after it,
        /// in order (applying a change again that the snapshot already holds changes nothing).
        func syncBridge() async {
            let owner: String
            let objects: [DBusValue]
            do {
                owner = try await nameOwner(BridgeNames.busName, on: bridge)
                objects = try await bridge.call(
                    destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.objectManager,
                    member: Contract.ObjectManager.getManagedObjects.name, timeout: options.bridgeTimeout)
            } catch {
                if Self.isAbsent(error) {
                    logger.notice("icws-bridged is not on the \(options.bridgeBus) bus; waiting for it")
                } else {
                    logger.warning("cannot read icws-bridged's interactions", metadata: ["error": "\(Self.text(error))"])
                }
                return
            }
            var dnd = false
            do {
                dnd = try await StatusProxy(bridge).isDoNotDisturb(timeout: options.bridgeTimeout)
            } catch {
                logger.info("cannot read the agent's Do Not Disturb status; taken as off", metadata: ["error": "\(Self.text(error))"])
            }
            bridgeOwner = owner
            let interactions = NotifierSignals.interactions(inManagedObjects: objects)
            logger.info("following icws-bridged", metadata: ["interactions": "\(interactions.count)", "do_not_disturb": "\(dnd)"])
            await apply(.bridgeSynced(interactions, doNotDisturb: dnd))
        }

        /// Asks the server what it can do (this also starts a D-Bus-activatable one).
        func serverAppeared() async {
            let names: [String]
            let owner: String
            do {
                let reply = try await notifications.call(
                    destination: NotificationsNames.busName, path: NotificationsNames.objectPath, interface: NotificationsNames.interface,
                    member: "GetCapabilities", timeout: options.notifyTimeout)
                names = (reply.first?.arrayElements ?? []).compactMap { if case .string(let s) = $0 { return s } else { return nil } }
                owner = try await nameOwner(NotificationsNames.busName, on: notifications)
            } catch {
                if Self.isAbsent(error) {
                    logger.warning("no notification server (\(NotificationsNames.busName)) on the \(options.notificationsBus) bus; waiting for one")
                } else {
                    logger.warning("the notification server does not answer", metadata: ["error": "\(Self.text(error))"])
                }
                return
            }
            serverOwner = owner
            let capabilities = ServerCapabilities(names)
            logger.info(
                "notification server found",
                metadata: ["actions": "\(capabilities.actions)", "body": "\(capabilities.body)", "body_markup": "\(capabilities.bodyMarkup)"])
            if !capabilities.actions { logger.notice("the notification server has no actions: calls are shown without Answer and Decline") }
            await apply(.serverAppeared(capabilities))
        }

        func nameOwner(_ name: String, on connection: BusConnection) async throws(BusError) -> String {
            let reply = try await connection.call(
                destination: BusDriver.name, path: BusDriver.path, interface: BusDriver.interface, member: "GetNameOwner", arguments: [.string(name)],
                timeout: options.notifyTimeout)
            guard case .string(let owner)? = reply.first, !owner.isEmpty else { throw .failed("no owner of \(name)") }
            return owner
        }

        // MARK: Performing the machine's actions

        /// Feeds one event and performs what it asks, feeding back the answers (in order).
        func apply(_ event: NotifierMachine.Event) async {
            var queue = machine.handle(event)
            while !queue.isEmpty {
                let action = queue.removeFirst()
                switch action {
                case .notify(let path, let generation, let request):
                    var id: UInt32?
                    do {
                        let reply = try await notifications.call(
                            destination: NotificationsNames.busName, path: NotificationsNames.objectPath, interface: NotificationsNames.interface,
                            member: "Notify", arguments: request.arguments, timeout: options.notifyTimeout)
                        if case .uint32(let u)? = reply.first { id = u }
                        logger.debug("notification shown", metadata: ["interaction": "\(Self.id(path))", "id": "\(id.map(String.init) ?? "?")"])
                    } catch {
                        logger.warning("the notification server refused a notification", metadata: ["error": "\(Self.text(error))"])
                    }
                    queue += machine.handle(.notifyReplied(path: path, generation: generation, id: id))
                case .close(let id):
                    do {
                        _ = try await notifications.call(
                            destination: NotificationsNames.busName, path: NotificationsNames.objectPath, interface: NotificationsNames.interface,
                            member: "CloseNotification", arguments: [.uint32(id)], timeout: options.notifyTimeout)
                        logger.debug("notification closed", metadata: ["id": "\(id)"])
                    } catch {
                        // Already gone (the user closed it as we did): nothing to do.
                        logger.debug("closing a notification failed", metadata: ["id": "\(id)", "error": "\(Self.text(error))"])
                    }
                case .pickup(let path):
                    callInteraction(path, .pickup, doing: "answering")
                case .disconnect(let path):
                    callInteraction(path, .disconnect, doing: "declining")
                }
            }
        }

        /// Call control waits for the ICWS server (seconds): it runs on its
        /// own, so notifications keep flowing; its outcome is only logged.
        /// What a notification's action does to its call.
        enum CallAction: Sendable { case pickup, disconnect }

        func callInteraction(_ path: String, _ action: CallAction, doing what: String) {
            let bridge = self.bridge
            let logger = self.logger
            let timeout = options.bridgeTimeout
            logger.info("\(what) a call", metadata: ["interaction": "\(Self.id(path))"])
            Task { await Loop.call(action, on: path, bridge: bridge, timeout: timeout, doing: what, logger: logger) }
        }

        static func call(_ action: CallAction, on path: String, bridge: BusConnection, timeout: Duration, doing what: String, logger: Logger) async {
            let interaction = InteractionProxy(bridge, path: path)
            do {
                // The notification server's signal and the bridge's may cross:
                // ask the bridge whether the call still rings before acting on it.
                guard InteractionState(bus: try await interaction.state(timeout: timeout)).isRinging else {
                    logger.notice("\(what) skipped: the call no longer rings", metadata: ["interaction": "\(id(path))"])
                    return
                }
                switch action {
                case .pickup: try await interaction.pickup(timeout: timeout)
                case .disconnect: try await interaction.disconnect(timeout: timeout)
                }
            } catch {
                var metadata: Logger.Metadata = ["interaction": "\(id(path))", "error": "\(text(error))"]
                if error.name == "org.freedesktop.DBus.Error.AccessDenied" {
                    metadata["hint"] = "call control needs membership in the icws-agents group (log in again after adding it)"
                }
                logger.error("\(what) the call failed", metadata: metadata)
            }
        }

        static func isAbsent(_ error: BusError) -> Bool {
            ["org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"].contains(error.name)
                || error.message.hasPrefix("no owner of ")
        }

        /// An error as one short line (its message may quote server text).
        static func text(_ error: BusError) -> String { NotificationText.clean("\(error.name): \(error.message)", limit: 512) }

        /// The escaped interaction id of a path, for logs.
        static func id(_ path: String) -> String {
            path.hasPrefix(BridgeNames.interactionPrefix) ? String(path.dropFirst(BridgeNames.interactionPrefix.count)) : path
        }
    }
}

/// The notifier's version (the project's).
public let notifierVersion = icwsBridgeVersion
