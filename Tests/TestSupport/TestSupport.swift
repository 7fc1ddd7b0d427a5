import Foundation
import ICWS
import ICWSSimulator
import Logging
import Synchronization

/// A clock that never sleeps: it records each requested wait and moves its
/// time forward by it, so backoff tests run instantly.
public final class ManualClock: SupervisorClock {
    private let state = Mutex<(now: Duration, sleeps: [Duration])>((.zero, []))
    public init() {}
    public func now() -> Duration { state.withLock { $0.now } }
    public func sleep(for duration: Duration) async throws {
        state.withLock {
            $0.sleeps.append(duration)
            $0.now += duration
        }
        try Task.checkCancellation()
        await Task.yield()
    }
    public func advance(_ d: Duration) { state.withLock { $0.now += d } }
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }
}

/// Log lines kept in memory so tests can look for secrets in them.
public final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])
    public init() {}
    public var all: [String] { lines.withLock { $0 } }
    public var text: String { all.joined(separator: "\n") }
    func append(_ s: String) { lines.withLock { $0.append(s) } }

    public func logger(_ label: String = "test", level: Logger.Level = .trace) -> Logger {
        logger(label, level: level) { $0 }
    }

    /// A logger whose capturing handler is first wrapped by `wrap` (a filter under test).
    public func logger(_ label: String = "test", level: Logger.Level = .trace, wrap: @escaping @Sendable (any LogHandler) -> any LogHandler) -> Logger {
        var l = Logger(label: label, factory: { _ in wrap(CapturingHandler(capture: self)) })
        l.logLevel = level
        return l
    }
}

struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        var merged = metadata
        if let m = event.metadata { merged.merge(m) { $1 } }
        capture.append("\(event.level) \(event.message) \(merged.map { "\($0)=\($1)" }.sorted().joined(separator: " "))")
    }
}

public struct TimeoutError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
public func eventually(
    _ what: String, timeout: Duration = .seconds(10), _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    if try await condition() { return }
    throw TimeoutError(description: "timed out waiting for \(what)")
}

/// Collects a supervisor's events as they come (the sink of its relay).
public final class EventLog: SupervisorEventSink {
    private let state = Mutex<(statuses: [SessionStatus], stations: [StationStatus], messages: [ICWSMessage], malformed: [MessageDecodeError])>(([], [], [], []))

    public init() {}

    public func handle(_ e: SupervisorEvent) {
        state.withLock { s in
            switch e {
            case .state(let status, let station):
                if s.statuses.last != status { s.statuses.append(status) }
                if s.stations.last != station { s.stations.append(station) }
            case .message(let m): s.messages.append(m)
            case .malformedMessage(let m): s.malformed.append(m)
            }
        }
    }

    public var statuses: [SessionStatus] { state.withLock { $0.statuses } }
    public var lastStatus: SessionStatus? { statuses.last }
    public var stations: [StationStatus] { state.withLock { $0.stations } }
    public var messages: [ICWSMessage] { state.withLock { $0.messages } }
    public var malformed: [MessageDecodeError] { state.withLock { $0.malformed } }
}

/// Starts a simulator on 127.0.0.1 with a free port.
public func startSimulator(_ configure: (inout SimulatorConfiguration) -> Void = { _ in }) async throws -> ICWSSimulator {
    var config = SimulatorConfiguration()
    config.keepAlive = .milliseconds(200)
    configure(&config)
    let sim = ICWSSimulator(configuration: config)
    try await sim.start()
    return sim
}

/// A supervisor wired to a simulator, with a manual clock and captured logs.
public struct SupervisorHarness: Sendable {
    public let sim: ICWSSimulator
    public let client: ICWSClient
    public let supervisor: SessionSupervisor
    /// Where the supervisor's events go: `log`, or a sink the test connects.
    public let relay: EventRelay
    public let clock: ManualClock
    public let log: EventLog
    public let logs: LogCapture
    let task: Task<Void, Never>

    public static func start(
        sim: ICWSSimulator, password: String = "secret", host: String = "127.0.0.1", observeEvents: Bool = true,
        _ configure: (inout SupervisorConfiguration) -> Void = { _ in }
    ) throws -> SupervisorHarness {
        let logs = LogCapture()
        let client = ICWSClient(configuration: .init(requestTimeout: .seconds(5)), logger: logs.logger("icws.http"))
        guard let base = ServerURL(string: "http://\(host):\(sim.port)") else { throw TimeoutError(description: "bad url") }
        var config = SupervisorConfiguration(servers: [base], userId: "agent", password: Secret(password))
        config.stallTimeout = .seconds(2)
        config.pollInterval = .milliseconds(20)
        configure(&config)
        let clock = ManualClock()
        let relay = EventRelay()
        let supervisor = SessionSupervisor(
            configuration: config, client: client, clock: clock, random: { 0.5 }, logger: logs.logger("icws.session"), events: relay)
        // The events have one sink: the log here, or the bridge under test (which connects itself to `relay`).
        let log = EventLog()
        if observeEvents { relay.connect(log) }
        let task = Task { await supervisor.run() }
        return SupervisorHarness(sim: sim, client: client, supervisor: supervisor, relay: relay, clock: clock, log: log, logs: logs, task: task)
    }

    public func waitForState(_ state: SessionState, timeout: Duration = .seconds(10)) async throws {
        try await eventually("state \(state.name)", timeout: timeout) { await supervisor.status.state == state }
    }

    public func stop() async {
        task.cancel()
        await task.value
        await client.shutdown()
        await sim.stop()
    }
}
