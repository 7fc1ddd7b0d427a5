import Bridge
import BridgeContract
import DBusKit
import FoundationEssentials
import ICWS
import ICWSProtocol
import Logging
import ProcessSupport
import ServiceLifecycle
import Synchronization
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

public let daemonVersion = icwsBridgeVersion

/// The sysexits code for a configuration error (systemd shows it as "config").
public let exitConfigError: Int32 = 78

/// Options from the command line.
public struct DaemonOptions: Sendable {
    public var configPath: String
    public var bus: BusAddress
    public init(configPath: String, bus: BusAddress) {
        self.configPath = configPath
        self.bus = bus
    }
}

/// A failure that ends the daemon with an exit code and a message.
public struct DaemonExit: Error, CustomStringConvertible {
    public var code: Int32
    public var description: String
}

/// The `STATUS=` line for systemctl status.
public func statusLine(_ s: SessionStatus, _ st: StationStatus) -> String {
    statusText(s, st).singleLine(maxBytes: 512)
}

func statusText(_ s: SessionStatus, _ st: StationStatus) -> String {
    let host = s.server.replacing("https://", with: "").replacing("http://", with: "")
    switch s.state {
    case .connected:
        var line = "connected to \(host) as \(s.userId)"
        if st.connected {
            let name = st.requested?.workstation ?? st.requested?.remoteNumber ?? st.requested?.kind.rawValue ?? "connected"
            line += ", station \(name) \(st.ready ? "ready" : "not ready")"
        } else {
            line += ", no station"
        }
        let unwell = s.subscriptions.filter { [.suspended, .faulted].contains(SubscriptionHealth(bus: $0.value)) }.sorted { $0.key < $1.key }
        if !unwell.isEmpty {
            line += "; subscription " + unwell.map { "\($0.key) \(SubscriptionHealth(bus: $0.value).name)" }.joined(separator: ", ")
        }
        return line
    case .connecting, .unknown:
        return "connecting to \(host)"
    case .reconnecting:
        if let wait = s.retryIn {
            let seconds = max(1, Int(wait.seconds.rounded()))
            return "reconnecting in \(seconds) s: \(s.lastError.isEmpty ? "retrying" : s.lastError)"
        }
        return "reconnecting to \(host)"
    case .stopped:
        return "stopped: \(s.lastError.isEmpty ? "disconnected" : s.lastError); waiting for Reconnect() or a reload"
    }
}

/// Loads the configuration and the password, or explains what is wrong.
public func loadConfiguration(path: String) throws(ConfigError) -> (DaemonConfiguration, Secret, String) {
    let config = try DaemonConfiguration.load(path: path)
    let (password, source) = try PasswordSource.load(configuration: config)
    return (config, password, source)
}

/// icws-bridged: a ServiceGroup of the session supervisor, the bus side and the notifier.
public enum Daemon {
    public static func run(_ options: DaemonOptions, logger: Logger) async throws(DaemonExit) {
        let notifier = Notifier()
        let (config, password, source): (DaemonConfiguration, Secret, String)
        do { (config, password, source) = try loadConfiguration(path: options.configPath) } catch {
            notifier.failure(errno: 22, status: "configuration error: \(error)")
            throw DaemonExit(code: exitConfigError, description: "configuration error: \(error)")
        }
        logger.info(
            "starting icws-bridged \(daemonVersion)",
            metadata: ["icws.servers": "\(config.servers.map(\.description).joined(separator: ","))", "icws.user": "\(config.user)", "password.source": "\(source)", "dbus.bus": "\(options.bus)"])

        let client = ICWSClient(configuration: config.clientConfiguration, logger: logger)
        // Events go from the supervisor straight to the bridge, in order, with
        // no task hop per message; the relay is wired once the bridge exists,
        // before the supervisor runs.
        let relay = EventRelay()
        let supervisor = SessionSupervisor(
            configuration: config.supervisorConfiguration(password: password), client: client, logger: logger, events: relay)

        let connection: BusConnection
        do { connection = try await BusConnection.connect(options.bus, logger: logger) } catch {
            await client.shutdown()
            notifier.failure(errno: 111, status: "cannot connect to the \(options.bus) bus: \(error.message)")
            throw DaemonExit(code: 1, description: "cannot connect to the \(options.bus) bus: \(error)")
        }
        let bridge: BridgeService
        do {
            let reclaimer = MemoryReclaimer()
            bridge = try BridgeService(
                supervisor: supervisor, connection: connection, logger: logger, workObserver: reclaimer.note(items:),
                statusObserver: { status, station in notifier.status(statusLine(status, station)) },
                completionTimeout: config.requestTimeout, workgroupsEnabled: config.workgroupsEnabled)
            relay.connect(bridge)
            try await bridge.publish()
        } catch {
            connection.close()
            await client.shutdown()
            notifier.failure(errno: 98, status: "cannot own \(BridgeNames.busName): \(error.message)")
            throw DaemonExit(code: 1, description: "cannot own \(BridgeNames.busName) on the \(options.bus) bus: \(error.message)")
        }
        // Ready once the configuration is valid and the name is owned, not when ICWS answers.
        notifier.ready(status: "connecting to \(config.servers.first?.description ?? "")")
        logger.info("ready", metadata: ["dbus.name": "\(BridgeNames.busName)"])

        // A graceful shutdown runs in reverse order: the session goes first (STOPPING=1,
        // logout), which ends its events, so the bridge then returns, and so on.
        let (reloads, reloadRequests) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: BusWatchService(connection: connection), serviceName: "bus"),
            .init(
                service: ReloadService(
                    path: options.configPath, reloads: reloads, supervisor: supervisor, client: client, notifier: notifier, logger: logger),
                serviceName: "reload"),
            .init(service: WatchdogService(supervisor: supervisor, connection: connection, notifier: notifier, logger: logger), serviceName: "watchdog"),
            .init(service: BridgeEventsService(bridge: bridge), serviceName: "bridge"),
            .init(service: WakeWatcher(supervisor: supervisor, logger: logger), serviceName: "wake"),
            .init(service: SessionService(supervisor: supervisor, notifier: notifier), serviceName: "session"),
        ]
        // Signals come from ProcessSignals' own thread (blocked everywhere else).
        var groupConfig = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [], logger: logger)
        groupConfig.maximumGracefulShutdownDuration = .seconds(4)
        groupConfig.logging.keys.serviceKey = "service"
        let group = ServiceGroup(configuration: groupConfig)
        let signals = Task {
            for await signal in ProcessSignals.stream() {
                if signal == SIGHUP {
                    reloadRequests.yield()
                } else {
                    await group.triggerGracefulShutdown()
                }
            }
        }
        defer { signals.cancel() }
        var failure: (any Error)?
        do { try await group.run() } catch { failure = error }
        connection.close()
        await client.shutdown()
        if let failure {
            throw DaemonExit(code: 1, description: "stopped on an error: \(failure)")
        }
        logger.info("stopped")
    }
}

/// Runs the supervisor; a graceful shutdown says STOPPING=1 and logs out.
struct SessionService: Service {
    let supervisor: SessionSupervisor
    let notifier: Notifier

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await untilGracefulShutdown { await supervisor.run() }
        } onGracefulShutdown: {
            notifier.stopping(status: "stopping: logging out")
        }
    }
}

/// Keeps the bridge (which the supervisor's events reach through the relay)
/// until its turn in a graceful shutdown: after the session's, which logs out
/// and publishes its last state on the way.
struct BridgeEventsService: Service {
    let bridge: BridgeService
    func run() async throws {
        try? await gracefulShutdown()
    }
}

/// WATCHDOG=1 at half of WATCHDOG_USEC, only when the supervisor actor turns
/// and the bus thread ran the probe handed to it one interval before.
struct WatchdogService: Service {
    let supervisor: SessionSupervisor
    let connection: BusConnection
    let notifier: Notifier
    let logger: Logger

    func run() async throws {
        guard let interval = notifier.watchdogPingInterval else {
            try? await gracefulShutdown()
            return
        }
        logger.debug("watchdog enabled", metadata: ["watchdog.ping_ms": "\(Int(interval.seconds * 1000))"])
        try await untilGracefulShutdown {
            var probe = connection.probe()
            while !Task.isCancelled {
                try await loopSleep(for: interval)
                _ = await supervisor.status
                if probe.answered {
                    notifier.watchdog()
                } else {
                    logger.error("the bus thread did not answer; not pinging the watchdog")
                }
                probe = connection.probe()
            }
        }
    }
}

/// SIGHUP: RELOADING=1, re-read the configuration, apply what changed, READY=1.
struct ReloadService: Service {
    let path: String
    /// One element per SIGHUP.
    let reloads: AsyncStream<Void>
    let supervisor: SessionSupervisor
    let client: ICWSClient
    let notifier: Notifier
    let logger: Logger

    func run() async throws {
        try await untilGracefulShutdown {
            for await _ in reloads {
                notifier.reloading()
                do {
                    let (config, password, source) = try loadConfiguration(path: path)
                    // New connections trust a changed ca-file (read anew on every
                    // reload); language and application-name go with the next login.
                    client.update(configuration: config.clientConfiguration)
                    await supervisor.update(configuration: config.supervisorConfiguration(password: password))
                    logger.info("configuration reloaded", metadata: ["password.source": "\(source)"])
                    notifier.notify(["READY=1"])
                } catch {
                    logger.error("reload refused; keeping the running configuration", metadata: ["error": "\(error)"])
                    notifier.notify(["READY=1", "STATUS=reload failed: \(error)"])
                }
            }
        }
    }
}

/// Ends the group with an error when the bus drops us (systemd restarts the daemon).
struct BusWatchService: Service {
    let connection: BusConnection

    struct Disconnected: Error, CustomStringConvertible {
        var description: String { "the D-Bus connection was lost" }
    }

    func run() async throws {
        // Told by the bus thread's own disconnect callback: nothing polls.
        let lost = AsyncStream<Void>.makeStream()
        connection.onDisconnect { lost.continuation.yield() }
        try await untilGracefulShutdown {
            if connection.isConnected {
                for await _ in lost.stream { break }
            }
            if Task.isCancelled { return }
            throw Disconnected()
        }
    }
}

/// Runs `operation` until a graceful shutdown cancels it; that cancellation is
/// a normal end, not an error of the service.
func untilGracefulShutdown(_ operation: @Sendable @escaping () async throws -> Void) async throws {
    do {
        try await cancelWhenGracefulShutdown(operation)
    } catch is CancellationError {
        return
    }
}
