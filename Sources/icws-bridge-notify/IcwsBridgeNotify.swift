import ArgumentParser
import DBusKit
import Logging
import Notifier
import ProcessSupport
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

@main
struct IcwsBridgeNotify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "icws-bridge-notify",
        abstract: "Shows a desktop notification with Answer and Decline for every call that rings in icws-bridged.",
        discussion: """
            Follows icws-bridged's interaction objects (contract v1.1) and shows each ringing \
            inbound interaction through org.freedesktop.Notifications: "Call from NAME", the \
            number and the queue (when the bridge publishes Eic_WorkgroupName, see its \
            interactions-attributes key), urgency critical, category x-gnome.call, no expiry. \
            Answer (or clicking the notification) calls the interaction's Pickup(), Decline its \
            Disconnect(); both need membership in the icws-agents group on the system bus. The \
            notification is closed when the call stops ringing, and nothing is shown while the \
            agent's status is a Do Not Disturb one (what still rings is shown when it ends).

            Run it as the user unit: systemctl --user enable --now icws-bridge-notify
            It logs to stderr (the journal under systemd). Exit codes: 0 stopped (SIGTERM), \
            69 a bus is not available or was lost (the unit restarts it), 64 bad usage.
            """,
        version: "icws-bridge-notify \(notifierVersion)")

    @Option(name: .long, help: "icws-bridged's bus: system, session, or a D-Bus address (default: $ICWS_BRIDGE_BUS, else system).")
    var bus: String?
    @Option(name: .long, help: "The notification server's bus: session (the default) or a D-Bus address.")
    var notificationsBus = "session"
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Synchronous, as icws-bridged's: an `async` main would park the main
    /// thread in `dispatch_main()` and start libdispatch's worker pool, whose
    /// monitor wakes the process every second. Tasks run on NIO's loops
    /// (`QuietExecutor`), signals come from a `sigwait` thread, and the main
    /// thread only waits: at rest the notifier sleeps.
    func run() throws {
        ProcessSignals.block()
        let quiet = QuietExecutor.install()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            // Written by a thread of its own: a stderr nobody reads never holds a task.
            var handler = StderrLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "icws-bridge-notify")
        if !quiet { logger.warning("the Swift runtime's executor hooks were taken; tasks run on libdispatch's pool, which wakes every second") }
        let bridgeBus = bus ?? environment("ICWS_BRIDGE_BUS") ?? "system"
        let service = NotifierService(
            options: NotifierOptions(bridgeBus: BusAddress(parsing: bridgeBus), notificationsBus: BusAddress(parsing: notificationsBus)),
            logger: logger)
        // SIGTERM (systemctl stop, logout) and SIGINT close what is shown, then exit 0.
        Task {
            for await signal in ProcessSignals.stream() where signal != SIGHUP {
                service.stop()
            }
        }
        let outcome = WaitForResult<NotifierFailure?>()
        Task {
            do throws(NotifierFailure) {
                try await service.run()
                outcome.set(nil)
            } catch {
                outcome.set(error)
            }
        }
        let error = outcome.wait()
        if let error { logger.critical("\(error.message)") }
        // The last lines reach stderr before the process ends (unless nobody reads it).
        LogOutbox.shared.flush(timeout: .seconds(2))
        if let error { throw ExitCode(error.exitCode) }
    }

    func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }
}
