import ArgumentParser
import DBusKit
import Daemon
import FoundationEssentials
import Glibc
import Logging
import ProcessSupport
import Systemd

@main
struct IcwsBridged: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "icws-bridged",
        abstract: "Holds one ICWS session and bridges it to D-Bus (io.github.icwsbridge.Bridge1).",
        discussion: """
            Configuration keys are documented in README.md and in the example \
            /usr/share/doc/icws-bridge/icws-bridge.conf.example. The password comes from the systemd \
            credential icws-password, the password-file key (mode 0600), or ICWS_PASSWORD.
            Exit codes: 0 stopped, 1 runtime failure, 78 configuration error.
            """,
        version: "icws-bridged \(daemonVersion)")

    @Option(name: .long, help: "Configuration file.") var config = "/etc/icws-bridge/icws-bridge.conf"
    @Option(name: .long, help: "Bus: system, session, or a D-Bus address such as unix:path=/run/bus.") var bus = "system"
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Flag(name: .long, help: "Validate the configuration and the password source, then exit (0 valid, 78 not).")
    var checkConfig = false
    @Option(name: .long, help: ArgumentHelp("Print every configuration key (markdown or man) and exit.", valueName: "format"))
    var configReference: String?

    func validate() throws {
        if let f = configReference, f != "markdown", f != "man" {
            throw ValidationError("--config-reference must be markdown or man")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Synchronous on purpose: an `async` main would park the main thread in
    /// `dispatch_main()` and hand the main queue to libdispatch's worker pool,
    /// whose monitor wakes every second (see `QuietExecutor`). The daemon's
    /// tasks run on NIO's loops; the main thread just waits for them.
    func run() throws {
        if let format = configReference {
            print(format == "man" ? ConfigKey.manSection() : ConfigKey.markdownTable(), terminator: "")
            return
        }
        // Before any other thread exists: the signals go to ProcessSignals' thread only.
        ProcessSignals.block()
        let quiet = QuietExecutor.install()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let journal = LogDestination.stderrIsJournal
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                journal ? JournalLogHandler(label: label, identifier: "icws-bridged") : StderrLogHandler(label: label)
            handler.logLevel = level
            // Every logger, the dependencies' too, passes the secret filter.
            return RedactingLogHandler(wrapping: handler)
        }
        if checkConfig {
            do {
                let (c, _, source) = try loadConfiguration(path: config)
                print("\(config): valid (servers \(c.servers.map(\.description).joined(separator: ", ")), user \(c.user), password from \(source))")
                return
            } catch {
                let text = Array("icws-bridged: configuration error: \(error)\n".utf8)
                _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                throw ExitCode(exitConfigError)
            }
        }
        let logger = Logger(label: "icws-bridged")
        if !quiet {
            logger.warning("the Swift runtime's executor hooks were taken; tasks run on libdispatch's pool, which wakes every second")
        }
        let options = DaemonOptions(configPath: config, bus: BusAddress(parsing: bus))
        let outcome = WaitForResult<DaemonExit?>()
        Task {
            do throws(DaemonExit) {
                try await Daemon.run(options, logger: logger)
                outcome.set(nil)
            } catch {
                outcome.set(error)
            }
        }
        let error = outcome.wait()
        if let error { logger.critical("\(error.description)") }
        // The last notify messages and log lines go out before the process
        // ends, unless systemd or the log has not read for a while.
        Notifier.flush(timeout: .seconds(2))
        LogOutbox.shared.flush(timeout: .seconds(2))
        if let error { throw ExitCode(error.code) }
    }
}
