import CSystemd
import FoundationEssentials
import Glibc

/// The service manager side of sd_notify(3) through libsystemd. Every call
/// is a no-op when `NOTIFY_SOCKET` is not set (not run by systemd).
public struct Notifier: Sendable {
    public init() {}

    public var isSupervised: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    /// Sends newline-separated `KEY=value` assignments.
    @discardableResult
    public func notify(_ assignments: [String]) -> Bool {
        // systemd splits on both \n and \r: a control character in a value
        // (server text in STATUS=) must not start an assignment of its own.
        let text = assignments.map { a in
            String(String.UnicodeScalarView(a.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
        }.joined(separator: "\n")
        return sd_notify(0, text) > 0
    }

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
