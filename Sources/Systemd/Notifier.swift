import CSystemd
import FoundationEssentials
import Glibc
import OwnThread

/// The service manager side of sd_notify(3) through libsystemd. Every call
/// is a no-op when `NOTIFY_SOCKET` is not set (not run by systemd).
///
/// `sd_notify` blocks while the socket's queue is full (systemd busy in a
/// `daemon-reload`; `net.unix.max_dgram_qlen` is 10 on some machines), so
/// the calls here only queue the message: one thread of its own sends them,
/// in order, and what waits is coalesced (`NotifyQueue`).
public struct Notifier: Sendable {
    public init() {}

    /// One sending thread for the process, made with the first message.
    static let outbox = Outbox(name: "sd-notify", empty: NotifyQueue()) { queue in
        for message in queue.messages { _ = sd_notify(0, message.joined(separator: "\n")) }
    }

    public var isSupervised: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    /// Queues newline-separated `KEY=value` assignments for the sending thread.
    public func notify(_ assignments: [String]) {
        guard isSupervised else { return }
        // systemd splits on both \n and \r: a control character in a value
        // (server text in STATUS=) must not start an assignment of its own.
        Self.outbox.submit(assignments.map(Self.withoutControlCharacters))
    }

    static func withoutControlCharacters(_ assignment: String) -> String {
        String(String.UnicodeScalarView(assignment.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
    }

    /// Waits until every queued message was sent, or `timeout` passed. For
    /// the main thread before the process exits (never on Swift's pool).
    @discardableResult
    public static func flush(timeout: Duration) -> Bool { outbox.flush(timeout: timeout) }

    public func ready(status: String) { notify(["READY=1", "STATUS=\(status)"]) }
    public func status(_ text: String) { notify(["STATUS=\(text)"]) }
    public func stopping(status: String) { notify(["STOPPING=1", "STATUS=\(status)"]) }
    public func watchdog() { notify(["WATCHDOG=1"]) }

    /// `RELOADING=1` with the monotonic time, as systemd 253+ expects (harmless before).
    public func reloading() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let usec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        notify(["RELOADING=1", "MONOTONIC_USEC=\(usec)"])
    }

    /// Reports a failure before exiting: `ERRNO=` and `STATUS=`.
    public func failure(errno: Int32, status: String) { notify(["ERRNO=\(errno)", "STATUS=\(status)"]) }

    /// Half the watchdog interval systemd asked for, or nil when there is none.
    public var watchdogPingInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        // A tiny WATCHDOG_USEC must not turn the ping loop into a busy loop.
        return .microseconds(Int64(max(usec / 2, 50_000)))
    }
}

/// The notify messages not yet sent. Messages that say only `STATUS=` and
/// `WATCHDOG=1` merge into the last one waiting if it too says only those
/// (the latest `STATUS=`, one `WATCHDOG=1`); a state change (`READY=1`,
/// `RELOADING=1`, `STOPPING=1`, `ERRNO=`) keeps its place, since systemd
/// acts on each in order. So a socket nobody reads for an hour leaves a
/// handful of messages waiting, not one per status change.
public struct NotifyQueue: OutboxBuffer {
    public private(set) var messages: [[String]] = []
    /// More state changes than this while nothing is sent: the oldest go.
    /// (They come from SIGHUP and the start and end of the process.)
    public static let limit = 32

    public init() {}

    public var isEmpty: Bool { messages.isEmpty }

    static func key(_ assignment: String) -> Substring { assignment.prefix { $0 != "=" } }

    /// A message that only refreshes what systemd shows.
    static func isRefresh(_ message: [String]) -> Bool {
        message.allSatisfy { key($0) == "STATUS" || $0 == "WATCHDOG=1" }
    }

    public mutating func add(_ message: [String]) {
        guard !message.isEmpty else { return }
        if Self.isRefresh(message), let last = messages.last, Self.isRefresh(last) {
            var merged = last.filter { old in !message.contains { Self.key($0) == Self.key(old) } }
            merged.append(contentsOf: message)
            messages[messages.count - 1] = merged
            return
        }
        messages.append(message)
        if messages.count > Self.limit { messages.removeFirst(messages.count - Self.limit) }
    }

    public mutating func take() -> NotifyQueue {
        defer { messages = [] }
        return self
    }
}
