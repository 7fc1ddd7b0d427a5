import FoundationEssentials
import ICWSProtocol
import ICWSSimulator
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `icws-bench --fleet=N`: N daemons, each with its own bus and a notify
/// socket that is read, against one icws-sim that takes every session down
/// with `shouldReconnect` and answers logins with 503
/// `error.server.notAcceptingConnections` for `--outage=S` seconds (20 by
/// default; `--retry-after=S` adds that header). Prints the login attempts
/// per daemon during the outage, the most logins in any one second, and how
/// long after the server accepted again each daemon had its station back.
func runFleet(count n: Int, outage: Double, retryAfter: String?, daemonPath: String) async throws {
    let users = (1...n).map { String(format: "agent%03d", $0) }
    let sim = try await startSimulator {
        $0.directorySize = 25
        $0.keepAlive = .seconds(10)
        for u in users { $0.accounts[u] = "secret" }
        $0.stations = Set((1...n).map { String(7000 + $0) })
    }
    sim.setRecordDeliveries(false)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    print("fleet: \(n) daemons, each with its own dbus-daemon and notify socket; outage \(Int(outage)) s\(retryAfter.map { ", Retry-After: \($0)" } ?? ""); logs in \(dir.path)")

    var buses: [PrivateBus] = []
    var daemons: [ChildProcess] = []
    var listeners: [NotifyListener] = []
    defer {
        for d in daemons { d.killNow() }
        for l in listeners { l.stop() }
        for b in buses { b.stop() }
    }
    for (i, user) in users.enumerated() {
        let bus = try PrivateBus()
        buses.append(bus)
        let config = dir.appendingPathComponent("\(user).conf").path
        try """
            server = http://127.0.0.1:\(sim.port)
            allow-insecure-http = yes
            user = \(user)
            station-type = workstation
            station-workstation = \(7000 + i + 1)
            station-ready = yes
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let notify = try NotifyListener()
        listeners.append(notify)
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notify.path
        env["ICWS_PASSWORD"] = "secret"
        env.removeValue(forKey: "WATCHDOG_USEC")
        daemons.append(
            try ChildProcess(
                [daemonPath, "--config", config, "--bus", bus.address, "--log-level", "warning"], environment: env,
                stderrPath: dir.appendingPathComponent("\(user).log").path))
    }

    /// Whether daemon `i`'s last STATUS= says its station is connected and ready.
    func ready(_ i: Int) -> Bool { listeners[i].statuses().last.map { $0.contains("ready") && !$0.contains("not ready") } ?? false }
    func waitAll(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (0..<n).allSatisfy(ready) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
    guard await waitAll(timeout: .seconds(120)) else {
        print("fleet: not every daemon came up with its station (see \(dir.path))")
        return
    }
    print("fleet: all \(n) daemons connected with their stations ready")

    let down = ContinuousClock.now
    sim.inject(.outage(downFor: .milliseconds(Int64(outage * 1000)), retryAfter: retryAfter))
    let accepting = down + .milliseconds(Int64(outage * 1000))
    // Each daemon's STATUS leaves "ready" when its session ends.
    var backAt: [ContinuousClock.Instant?] = Array(repeating: nil, count: n)
    var wentDown = Array(repeating: false, count: n)
    let deadline = accepting + .seconds(90)
    while ContinuousClock.now < deadline, backAt.contains(where: { $0 == nil }) {
        for i in 0..<n where backAt[i] == nil {
            if !wentDown[i] {
                wentDown[i] = !ready(i)
            } else if ready(i) {
                backAt[i] = listeners[i].timed.last { $0.1.contains("STATUS=") }?.0 ?? ContinuousClock.now
            }
        }
        try? await Task.sleep(for: .milliseconds(20))
    }

    let logins = sim.requests.filter { $0.method == "POST" && $0.path.lowercased().hasSuffix("/icws/connection") && $0.receivedAt >= down }
    var perDaemon: [String: Int] = [:]
    var perSecond: [Int: Int] = [:]
    for r in logins {
        if r.receivedAt < accepting, let u = r.body?["userID"]?.stringValue { perDaemon[u, default: 0] += 1 }
        perSecond[Int((r.receivedAt - down).seconds), default: 0] += 1
    }
    let attempts = users.map { perDaemon[$0] ?? 0 }
    let recoveries = backAt.compactMap { $0.map { max(($0 - accepting).seconds, 0) } }.sorted()
    let peak = perSecond.max { $0.value < $1.value }
    func pct(_ q: Double) -> Double { recoveries.isEmpty ? .nan : recoveries[min(recoveries.count - 1, Int(Double(recoveries.count - 1) * q))] }
    print(
        String(
            format: "fleet: login attempts per daemon during the %.0f s outage: mean %.1f, max %d (target ≤ 6); %d logins in all after the down",
            outage, Double(attempts.reduce(0, +)) / Double(n), attempts.max() ?? 0, logins.count))
    print(
        String(
            format: "fleet: most logins in one second: %d (%.2f N, target ≤ 0.3 N), in second %d after the down", peak?.value ?? 0,
            Double(peak?.value ?? 0) / Double(n), peak?.key ?? -1))
    print("fleet: logins per second after the down: " + perSecond.keys.sorted().map { "\($0):\(perSecond[$0] ?? 0)" }.joined(separator: " "))
    print(
        String(
            format: "fleet: back with the station after the server accepted again: %d of %d; p50 %.1f s, p90 %.1f s, max %.1f s (target ≤ 12 s)",
            recoveries.count, n, pct(0.5), pct(0.9), recoveries.last ?? .nan))
}
