import CBenchReceiver
import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSSimulator
import Logging
import Synchronization
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Monotonic nanoseconds, the same clock in every process of the machine.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Latencies in nanoseconds, collected by the subscriber.
final class Collector: Sendable {
    struct State {
        var latencies: [UInt64] = []
        var seen = Set<UInt64>()
        var outOfOrder = 0
        var last: UInt64 = 0
    }
    let state = Mutex(State())

    func record(seq: UInt64, sent: UInt64, now: UInt64) {
        state.withLock { s in
            if s.seen.insert(seq).inserted {
                s.latencies.append(now &- sent)
                if seq < s.last { s.outOfOrder += 1 }
                s.last = seq
            }
        }
    }

    func reset() { state.withLock { $0 = State() } }
    var count: Int { state.withLock { $0.seen.count } }
    var snapshot: State { state.withLock { $0 } }
}

struct Percentiles {
    var p50: Double, p99: Double, p999: Double, max: Double
    init(_ ns: [UInt64]) {
        let s = ns.sorted()
        func at(_ q: Double) -> Double {
            guard !s.isEmpty else { return .nan }
            return Double(s[min(s.count - 1, Int((Double(s.count) * q).rounded(.down)))]) / 1e6
        }
        p50 = at(0.5)
        p99 = at(0.99)
        p999 = at(0.999)
        max = s.last.map { Double($0) / 1e6 } ?? .nan
    }
}

func ms(_ v: Double) -> String { v.isNaN ? "-" : String(format: "%.2f ms", v) }

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

func row(_ rate: Int, _ sent: Int, _ lost: Int, _ p: Percentiles) -> String {
    pad(String(rate), 8) + pad(String(sent), 8) + pad(String(lost), 7) + pad(ms(p.p50), 11) + pad(ms(p.p99), 11) + pad(ms(p.p999), 11) + ms(p.max)
}

/// An alerting message whose attributes carry the bench sequence and send time.
func alertingMessage(seq: UInt64) -> JSONValue {
    [
        "__type": .string(ICWSMessage.TypeURN.interactionAlerting), "isDelta": true,
        "alertingInteractionDetails": [[
            "interactionId": .string("b\(seq)"), "interactionType": "Call", "name": "Bench", "address": "+10000000000",
            "alertType": 5, "alertAction": 2, "autoAnswer": false,
            "attributes": ["BenchSeq": .string(String(seq)), "BenchSent": .string(String(monotonicNanos()))],
        ]],
    ]
}

/// The same signal, straight from a libdbus emitter (the floor).
func floorSignal(seq: UInt64) -> [DBusValue] {
    [
        .vardicts([.vardict([
            ("interactionId", .string("b\(seq)")), ("interactionType", .string("Call")), ("name", .string("Bench")),
            ("address", .string("+10000000000")), ("alertType", .uint32(5)), ("alertAction", .uint32(2)),
            ("autoAnswer", .bool(false)),
            ("attributes", .stringDict([("BenchSeq", String(seq)), ("BenchSent", String(monotonicNanos()))])),
        ])]), .bool(true),
    ]
}

/// Sends `count` messages at `rate` per second through `send`, paced in 1 ms steps.
func paced(rate: Int, count: Int, startSeq: UInt64, _ send: (UInt64) -> Void) async {
    let start = ContinuousClock.now
    var sent = 0
    while sent < count {
        let due = min(count, Int(Double(rate) * (ContinuousClock.now - start).seconds) + 1)
        while sent < due {
            send(startSeq + UInt64(sent))
            sent += 1
        }
        if sent < count { try? await Task.sleep(for: .milliseconds(1)) }
    }
}

func waitFor(_ collector: Collector, count: Int, timeout: Duration) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if collector.count >= count { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return collector.count >= count
}

func cpuSeconds(pid: pid_t) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return .nan }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return .nan }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// "anonymous + file-backed" split of the RSS (file pages are shared libraries).
func rssSplit(pid: pid_t) -> String {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return "" }
    func kb(_ key: String) -> Double {
        text.split(separator: "\n").first { $0.hasPrefix(key) }.flatMap { Double($0.split(separator: " ").dropFirst().first ?? "") } ?? .nan
    }
    return String(format: "(anonymous %.1f MB, file-backed %.1f MB)", kb("RssAnon:") / 1024, kb("RssFile:") / 1024)
}

/// Context switches (voluntary and not) of every thread of `pid` over
/// `window`, sampled every 250 ms so that threads that come and go are
/// counted too; with the split by thread name.
func contextSwitches(pid: pid_t, over window: Duration) async -> (Int, String) {
    var last: [String: Int] = [:]
    var names: [String: String] = [:]
    var delta: [String: Int] = [:]
    func sample() {
        let dir = "/proc/\(pid)/task"
        for tid in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let status = try? String(contentsOfFile: "\(dir)/\(tid)/status", encoding: .utf8) else { continue }
            let n = status.split(separator: "\n").filter { $0.contains("ctxt_switches") }
                .compactMap { $0.split(separator: "\t").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }.reduce(0, +)
            names[tid] = (try? String(contentsOfFile: "\(dir)/\(tid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? tid
            if let before = last[tid] { delta[tid, default: 0] += n - before }
            last[tid] = n
        }
    }
    sample()
    let end = ContinuousClock.now + window
    while ContinuousClock.now < end {
        try? await Task.sleep(for: .milliseconds(250))
        sample()
    }
    var byName: [String: Int] = [:]
    for (tid, d) in delta { byName[names[tid] ?? tid, default: 0] += d }
    let split = byName.filter { $0.value > 0 }.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    return (delta.values.reduce(0, +), split)
}

func rssMB(pid: pid_t) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return .nan }
    return kb / 1024
}

@main
struct Bench {
    static func main() async throws { try await run() }

    nonisolated static func run() async throws {
        let args = CommandLine.arguments
        let quick = args.contains("--quick")
        let million = Int(args.first(where: { $0.hasPrefix("--messages=") })?.dropFirst(11) ?? "") ?? (quick ? 100_000 : 1_000_000)
        let seconds = quick ? 1.0 : 3.0
        let bin = URL(fileURLWithPath: args[0]).deletingLastPathComponent().path
        // The daemon under test: the installed form (static Swift runtime) when scripts/bench passes it.
        let daemonPath = args.first(where: { $0.hasPrefix("--daemon=") }).map { String($0.dropFirst(9)) } ?? bin + "/icws-bridged"
        if let fleet = args.first(where: { $0.hasPrefix("--fleet=") }).flatMap({ Int($0.dropFirst(8)) }), fleet > 0 {
            let outage = args.first(where: { $0.hasPrefix("--outage=") }).flatMap { Double($0.dropFirst(9)) } ?? 20
            let retryAfter = args.first(where: { $0.hasPrefix("--retry-after=") }).map { String($0.dropFirst(14)) }
            try await runFleet(count: fleet, outage: outage, retryAfter: retryAfter, daemonPath: daemonPath)
            return
        }
        if let other = args.first(where: { $0.hasPrefix("--ab=") }).map({ String($0.dropFirst(5)) }) {
            let burst = Int(args.first(where: { $0.hasPrefix("--burst=") })?.dropFirst(8) ?? "") ?? 50_000
            let rounds = Int(args.first(where: { $0.hasPrefix("--rounds=") })?.dropFirst(9) ?? "") ?? 3
            let python = args.first(where: { $0.hasPrefix("--python-bridge=") }).map { String($0.dropFirst(16)) }
                ?? FileManager.default.currentDirectoryPath + "/Benchmarks/python-bridge/icws_python_bridge.py"
            try await runAB(daemonPath: daemonPath, otherPath: other, burst: burst, rounds: rounds, pythonBridge: python)
            return
        }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        print("icws-bench: \(ProcessInfo.processInfo.processorCount) cores, \(String(format: "%.0f", Double(ProcessInfo.processInfo.physicalMemory) / 1e9)) GB, daemon \(daemonPath)")

        let sim = try await startSimulator {
            $0.directorySize = 10_000
            $0.keepAlive = .seconds(10)
        }
        sim.setRecordDeliveries(false)
        let bus = try PrivateBus()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)

        // A private system bus with python-dbusmock's logind, for the wake-up rounds.
        let systemBus = try PrivateBus(includeShippedPolicy: false)
        let logind = try ChildProcess(
            ["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "logind"],
            environment: ProcessInfo.processInfo.environment.merging(["DBUS_SYSTEM_BUS_ADDRESS": systemBus.address]) { $1 })
        defer {
            logind.killNow()
            systemBus.stop()
        }

        func startDaemon(messaging: String, sim: ICWSSimulator, watchdogUsec: Int? = nil) async throws -> (ChildProcess, NotifyListener, Double) {
            let config = dir.appendingPathComponent("bench-\(messaging).conf").path
            try """
                server = http://127.0.0.1:\(sim.port)
                allow-insecure-http = yes
                user = agent
                messaging = \(messaging)
                poll-interval = 1s
                station-type = workstation
                station-workstation = 7001
                station-ready = yes
                users-ids = *
                users-properties = extension,statusText
                backoff-reset-after = 1s
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let notify = try NotifyListener()
            var env = ProcessInfo.processInfo.environment
            env["NOTIFY_SOCKET"] = notify.path
            env["ICWS_PASSWORD"] = "secret"
            env["DBUS_SYSTEM_BUS_ADDRESS"] = systemBus.address
            if let watchdogUsec { env["WATCHDOG_USEC"] = String(watchdogUsec) } else { env.removeValue(forKey: "WATCHDOG_USEC") }
            let t0 = ContinuousClock.now
            let p = try ChildProcess([daemonPath, "--config", config, "--bus", bus.address, "--log-level", "error"], environment: env, stderrPath: dir.appendingPathComponent("daemon.log").path)
            while notify.count("READY=1") == 0 {
                if p.poll() != nil { throw TimeoutError(description: "daemon exited; see \(dir.path)/daemon.log") }
                try await Task.sleep(for: .microseconds(200))
            }
            let ready = (notify.timed.first { $0.1.contains("READY=1") }!.0 - t0).seconds * 1000
            return (p, notify, ready)
        }

        do {
            // A small directory first: icws-sim's default of 25 users plus the agent.
            // Keep-alives every 10 s, as a real server sends them (the tests' default is 200 ms).
            let small = try await startSimulator { $0.keepAlive = .seconds(10) }
            let (daemon, notify, _) = try await startDaemon(messaging: "sse", sim: small, watchdogUsec: 30_000_000)
            while small.currentStation == nil { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .seconds(2))
            print("\n== At rest, 26-user directory (keep-alives every 10 s, WatchdogSec=30s)")
            print("  RSS: \(String(format: "%.1f MB", rssMB(pid: daemon.pid))) \(rssSplit(pid: daemon.pid))")
            let window: Duration = quick ? .seconds(20) : .seconds(60)
            let (switches, byThread) = await contextSwitches(pid: daemon.pid, over: window)
            let perMinute = Double(switches) * 60 / window.seconds
            print("  context switches: \(String(format: "%.0f", perMinute)) a minute, all threads (\(byThread))")
            await daemon.stop()
            notify.stop()
            await small.stop()
        }

        var (daemon, notify, readyMs) = try await startDaemon(messaging: "sse", sim: sim)
        let client = try await BusConnection.connect(.address(bus.address), logger: logger)
        try await client.addMatch("type='signal',member='InteractionAlerting'")
        try await client.addMatch("type='signal',member='UsersChanged'")
        let collector = Collector()
        let usersSignals = Mutex<[(ContinuousClock.Instant, Bool, Int, Int)]>([])
        let stream = client.signals()
        Task {
            for await s in stream {
                let now = monotonicNanos()
                if s.member == "InteractionAlerting", let d = s.arguments.first?.arrayElements?.first,
                    let attrs = d["attributes"], let seq = attrs["BenchSeq"]?.stringValue.flatMap(UInt64.init),
                    let sent = attrs["BenchSent"]?.stringValue.flatMap(UInt64.init)
                {
                    collector.record(seq: seq, sent: sent, now: now)
                } else if s.member == "UsersChanged", s.arguments.count == 4 {
                    let entry = (ContinuousClock.now, s.arguments[3].boolValue ?? true, s.arguments[0].arrayElements?.count ?? 0, s.arguments[1].arrayElements?.count ?? 0)
                    usersSignals.withLock { $0.append(entry) }
                }
            }
        }
        // Wait for the session and the station; at rest means after the users
        // snapshot, once the daemon has given the memory of that work back (1 s quiet).
        while sim.currentStation == nil { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .seconds(2.5))
        let restMB = rssMB(pid: daemon.pid)
        let restSplit = rssSplit(pid: daemon.pid)

        var seq: UInt64 = 1
        print("\n== End-to-end latency, icws-sim → icws-bridged → dbus-daemon → subscriber (SSE)")
        print("rate/s  sent    lost   p50        p99        p99.9      max")
        var cpuPer1000 = Double.nan
        for rate in [100, 1000, 10_000] {
            collector.reset()
            let n = Int(Double(rate) * seconds)
            let cpu0 = cpuSeconds(pid: daemon.pid)
            await paced(rate: rate, count: n, startSeq: seq) { sim.emit(alertingMessage(seq: $0)) }
            _ = await waitFor(collector, count: n, timeout: .seconds(10))
            if rate == 10_000 { cpuPer1000 = (cpuSeconds(pid: daemon.pid) - cpu0) / Double(n) * 1000 }
            seq += UInt64(n)
            let snap = collector.snapshot
            let p = Percentiles(snap.latencies)
            print(row(rate, n, n - snap.seen.count, p))
        }

        print("\n== Memory and CPU of icws-bridged")
        print("  CPU per 1,000 messages (at 10,000/s): \(String(format: "%.3f s", cpuPer1000))")
        print("  RSS at rest (holding the 10,001-user directory): \(String(format: "%.1f MB", restMB)) \(restSplit)")
        collector.reset()
        let flood = 10_000
        let t0 = ContinuousClock.now
        var done = 0
        var samples: [String] = []
        while done < million {
            let chunk = min(flood, million - done)
            await paced(rate: flood, count: chunk, startSeq: seq) { sim.emit(alertingMessage(seq: $0)) }
            seq += UInt64(chunk)
            done += chunk
            if done % (million / 5) < chunk { samples.append(String(format: "%dk: %.1f MB", done / 1000, rssMB(pid: daemon.pid))) }
        }
        print("  RSS while flooding: \(samples.joined(separator: ", "))")
        _ = await waitFor(collector, count: million, timeout: .seconds(30))
        print("  RSS after \(million) messages (\(flood)/s, \(String(format: "%.0f", (ContinuousClock.now - t0).seconds)) s, \(million - collector.count) lost): \(String(format: "%.1f MB", rssMB(pid: daemon.pid)))")
        try await Task.sleep(for: .seconds(2))
        print("  RSS 2 s later: \(String(format: "%.1f MB", rssMB(pid: daemon.pid)))")

        // One plain libdbus receiver that only counts (the Swift subscriber that
        // decodes every signal for the latency figures steps aside meanwhile).
        guard let receiver = bench_receiver_start(bus.address, "InteractionAlerting") else {
            throw BenchError(message: "cannot start the counting receiver")
        }
        let latencyRule = "type='signal',member='InteractionAlerting'"
        _ = try await client.call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "RemoveMatch", arguments: [.string(latencyRule)])
        /// Starts sending `count` messages (numbered from `first`) as fast as
        /// `send` goes, then waits for all of them at the counting receiver: the
        /// rate is count / (first send → last arrival), nothing lost.
        func maximum(label: String, count: Int, watching pid: pid_t? = nil, _ send: (_ first: UInt64, _ count: Int) -> Void) async -> (rate: Int, lost: Int, peakMB: Double) {
            bench_receiver_reset(receiver)
            let start = ContinuousClock.now
            send(seq, count)
            let deadline = ContinuousClock.now + .seconds(60)
            var peak = pid.map { rssMB(pid: $0) } ?? .nan
            var polls = 0
            while bench_receiver_count(receiver) < UInt64(count), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(2))
                polls += 1
                if let pid, polls % 25 == 0 { peak = max(peak, rssMB(pid: pid)) }
            }
            let received = Int(bench_receiver_count(receiver))
            let elapsed = (ContinuousClock.now - start).seconds
            seq += UInt64(count)
            let lost = count - received
            let rate = Int(Double(received) / elapsed)
            print("  \(label): \(rate) messages/s (\(count) sent as fast as possible, \(lost == 0 ? "none lost" : "\(lost) lost"))")
            return (rate, lost, peak)
        }
        let burst = Int(args.first(where: { $0.hasPrefix("--burst=") })?.dropFirst(8) ?? "") ?? (quick ? 50_000 : 200_000)
        print("\n== Maximum rate: \(burst) alerting messages sent as fast as possible, against the floor (icws-bridged pid \(daemon.pid))")
        try await Task.sleep(for: .milliseconds(300))
        // icws-sim serializes the burst before the clock starts: it stands in
        // for a server on another machine, and its JSON encoder would otherwise
        // take a large share of the 2 cores the bridge and the floor share.
        let prepared = sim.prepare((0..<burst).map { alertingMessage(seq: seq + UInt64($0)) })
        let burstCPU0 = cpuSeconds(pid: daemon.pid)
        let rssBeforeBurst = rssMB(pid: daemon.pid)
        let bridgeMax = await maximum(label: "bridge (icws-sim → icws-bridged)", count: prepared.count, watching: daemon.pid) { _, _ in
            sim.emit(prepared)
        }
        print("  RSS of icws-bridged: \(String(format: "%.1f MB before, %.1f MB at most during the burst (sampled every 50 ms)", rssBeforeBurst, bridgeMax.peakMB))")
        let burstCPU = (cpuSeconds(pid: daemon.pid) - burstCPU0) / Double(burst) * 1000
        print("  CPU of icws-bridged per 1,000 messages in this burst: \(String(format: "%.1f ms", burstCPU * 1000))")
        // For comparison with the figures before 2026-12-02: the same burst
        // with icws-sim encoding each message as it sends it, on the same cores.
        let liveBurst = burst / 4
        let live = await maximum(label: "bridge, icws-sim encoding as it sends (\(liveBurst) messages; informational)", count: liveBurst) { first, n in
            for i in 0..<n { sim.emit(alertingMessage(seq: first + UInt64(i))) }
        }
        // The floor: the same signals from one plain libdbus sender (C, on its
        // own thread, no Swift on its path), into the same dbus-daemon and receiver.
        let floorMax = await maximum(label: "floor (one plain libdbus sender)", count: burst) { first, n in
            let address = bus.address
            Thread.detachNewThread { _ = bench_send_alerting(address, "/bench", BridgeNames.interactions, first, UInt64(n)) }
        }
        print("  CPU of the plain libdbus sender per 1,000 signals (building and sending only): \(String(format: "%.1f ms", Double(bench_sender_cpu_ns()) / Double(burst) / 1000))")
        print("  bridge/floor = \(floorMax.rate > 0 ? String(format: "%.0f %%", Double(bridgeMax.rate) / Double(floorMax.rate) * 100) : "-")")
        print("  bridge with icws-sim encoding as it sends/floor = \(floorMax.rate > 0 ? String(format: "%.0f %%", Double(live.rate) / Double(floorMax.rate) * 100) : "-") (informational)")
        try await client.addMatch(latencyRule)

        let emitter = try await BusConnection.connect(.address(bus.address), logger: logger)
        print("\n== Floor latency: the same signals emitted straight into dbus-daemon (no ICWS)")
        print("rate/s  sent    lost   p50        p99        p99.9      max")
        for rate in [100, 1000, 10_000] {
            collector.reset()
            let n = Int(Double(rate) * seconds)
            await paced(rate: rate, count: n, startSeq: seq) {
                try? emitter.emitSignal(path: "/bench", interface: BridgeNames.interactions, member: "InteractionAlerting", arguments: floorSignal(seq: $0))
            }
            _ = await waitFor(collector, count: n, timeout: .seconds(10))
            seq += UInt64(n)
            let snap = collector.snapshot
            let p = Percentiles(snap.latencies)
            print(row(rate, n, n - snap.seen.count, p))
        }

        print("\n== Users: 10,000-user snapshot and a 1,000-user delta")
        usersSignals.withLock { $0.removeAll() }
        _ = try await client.call(destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.session, member: "Reconnect")
        var snapshotMs = Double.nan
        for _ in 0..<1000 {
            if let sig = usersSignals.withLock({ $0.first { !$0.1 && $0.2 >= 10_000 } }), let queued = sim.lastUsersSnapshotAt {
                snapshotMs = (sig.0 - queued).seconds * 1000
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        print("  snapshot of \(10_000 + 1) users: queued by icws-sim → UsersChanged received: \(ms(snapshotMs))")
        let changed: [JSONValue] = (1...1000).map { i in
            ["configurationId": ["id": .string(String(format: "user%04d", i)), "displayName": .string("User \(i)")], "statusText": "Bench"]
        }
        usersSignals.withLock { $0.removeAll() }
        let deltaStart = ContinuousClock.now
        sim.emit(["__type": .string(ICWSMessage.TypeURN.users), "isDelta": true, "subscriptionId": "icws-bridge-users", "changed": .array(changed)])
        var deltaMs = Double.nan
        for _ in 0..<1000 {
            if let sig = usersSignals.withLock({ $0.first { $0.1 && $0.3 == 1000 } }) {
                deltaMs = (sig.0 - deltaStart).seconds * 1000
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        print("  delta of 1,000 users → UsersChanged received: \(ms(deltaMs))")
        let getStart = ContinuousClock.now
        let users = try await client.call(destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.users, member: "GetUsers")
        print("  GetUsers (\(users.first?.arrayElements?.count ?? 0) users): \(ms((ContinuousClock.now - getStart).seconds * 1000))")

        // The agent's own interactions (contract v1.1).
        print("\n== Interaction objects (the agent's queue)")
        let queueSub = "icws-bridge-my-interactions"
        let watcher = try await BusConnection.connect(.address(bus.address), logger: logger)
        try await watcher.addMatch("type='signal',member='PropertiesChanged',path_namespace='\(BridgeNames.objectPath)/Interaction'")
        let changeLatencies = Mutex<[UInt64]>([])
        let watchTask = Task {
            for await sig in watcher.signals() where sig.member == "PropertiesChanged" {
                let now = monotonicNanos()
                if let sent = sig.arguments[1]["Attributes"]?["BenchSent"]?.stringValue.flatMap({ UInt64($0) }) {
                    changeLatencies.withLock { $0.append(now &- sent) }
                }
            }
        }
        sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": .string(queueSub),
            "interactionsAdded": [["interactionId": "bench-1", "attributes": ["Eic_State": "C", "Eic_ObjectType": "Call"]]],
        ])
        try await Task.sleep(for: .milliseconds(200))
        let changes = quick ? 1000 : 3000
        await paced(rate: 1000, count: changes, startSeq: 0) { i in
            sim.emit([
                "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": .string(queueSub),
                "interactionsChanged": [["interactionId": "bench-1", "attributes": ["Eic_State": i % 2 == 0 ? "H" : "C", "BenchSent": .string(String(monotonicNanos()))]]],
            ])
        }
        try await Task.sleep(for: .milliseconds(500))
        watchTask.cancel()
        let cp = Percentiles(changeLatencies.withLock { $0 })
        print("  state change → PropertiesChanged at 1,000 changes/s: p50 \(ms(cp.p50)), p99 \(ms(cp.p99)), max \(ms(cp.max)) (\(changeLatencies.withLock { $0.count })/\(changes) seen)")
        // Pickup: the D-Bus call → the ICWS request on the wire.
        let realCall = sim.startCall()
        try await Task.sleep(for: .milliseconds(300))
        var pickupNs: [UInt64] = []
        if let callPath = BridgeNames.interactionPath(realCall) {
            for _ in 0..<(quick ? 100 : 300) {
                let before = sim.requests.count
                let t0 = ContinuousClock.now
                _ = try? await client.call(destination: BridgeNames.busName, path: callPath, interface: BridgeNames.interaction, member: "Pickup")
                if let r = sim.requests.dropFirst(before).first(where: { $0.path.hasSuffix("/pickup") }) {
                    let d = (r.receivedAt - t0).components
                    pickupNs.append(UInt64(d.seconds) * 1_000_000_000 + UInt64(d.attoseconds / 1_000_000_000))
                }
            }
        }
        let pp = Percentiles(pickupNs)
        print("  Pickup call → the ICWS request at the server: p50 \(ms(pp.p50)), p99 \(ms(pp.p99)) (\(pickupNs.count) calls)")
        let rssBefore = rssMB(pid: daemon.pid)
        sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": .string(queueSub),
            "interactionsAdded": .array((0..<1000).map { i in
                ["interactionId": .string("bulk-\(i)"), "attributes": ["Eic_State": "A", "Eic_ObjectType": "Call", "Eic_RemoteName": .string("Caller \(i)"), "Eic_RemoteAddress": "+13175550100"]]
            }),
        ])
        var managedCount = 0
        for _ in 0..<200 {
            let m = try await client.call(destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.objectManager, member: "GetManagedObjects")
            if case .dict(_, _, let entries)? = m.first { managedCount = entries.count }
            if managedCount >= 1000 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .seconds(1.5))
        let getStart2 = ContinuousClock.now
        _ = try await client.call(destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.objectManager, member: "GetManagedObjects")
        let getMs = (ContinuousClock.now - getStart2).seconds * 1000
        print("  \(managedCount) live interaction objects: RSS \(String(format: "%.1f MB", rssMB(pid: daemon.pid))) (\(String(format: "%.1f MB", rssBefore)) before), GetManagedObjects \(ms(getMs))")
        sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": .string(queueSub),
            "interactionsRemoved": .array((0..<1000).map { .string("bulk-\($0)") } + ["bench-1"]),
        ])
        watcher.close()

        // Waking up: the stream dies silently (a suspended laptop), a call rings,
        // then logind says the machine resumed.
        let wakeRounds = quick ? 3 : 10
        print("\n== Waking up (the stream goes silent, a call rings, logind PrepareForSleep(false); \(wakeRounds) rounds)")
        var wakeMs: [Double] = []
        for _ in 0..<wakeRounds {
            collector.reset()
            sim.inject(.silentStreams)
            try await Task.sleep(for: .milliseconds(300))
            let rang = sim.startAlerting()
            try await Task.sleep(for: .milliseconds(300))
            let t0 = ContinuousClock.now
            _ = try await runCommand([
                "gdbus", "call", "--address", systemBus.address, "--dest", "org.freedesktop.login1", "--object-path", "/org/freedesktop/login1",
                "--method", "org.freedesktop.DBus.Mock.EmitSignal", "org.freedesktop.login1.Manager", "PrepareForSleep", "b", "[<false>]",
            ])
            var back: Double = .nan
            for _ in 0..<5000 {
                let alerting = try await client.call(
                    destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: "org.freedesktop.DBus.Properties", member: "Get",
                    arguments: [.string(BridgeNames.interactions), .string("Alerting")])
                if "\(alerting)".contains(rang) {
                    back = (ContinuousClock.now - t0).seconds * 1000
                    break
                }
                try await Task.sleep(for: .milliseconds(2))
            }
            wakeMs.append(back)
            sim.inject(.clear)
            sim.stopAlerting(rang)
            try await Task.sleep(for: .milliseconds(500))
        }
        let ws = wakeMs.sorted()
        print("  wake-up → live stream again (the call that rang meanwhile in Alerting): median \(ms(ws[ws.count / 2])), max \(ms(ws.last ?? .nan)); rounds: \(wakeMs.map { String(format: "%.0f", $0) }.joined(separator: ", ")) ms (stall-timeout would take 90 s)")
        var setMs: [Double] = []
        for i in 0..<10 {
            let t0 = ContinuousClock.now
            _ = try? await client.call(
                destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: BridgeNames.status, member: "SetStatus",
                arguments: [.string(i % 2 == 0 ? "do not disturb" : "available"), .vardict([])])
            setMs.append((ContinuousClock.now - t0).seconds * 1000)
        }
        let ss = setMs.sorted()
        print("  SetStatus → reply (202, then the completion message; icws-sim completes after 100 ms): median \(ms(ss[ss.count / 2])), max \(ms(ss.last ?? .nan))")

        // Each round: the server forgets every session and refuses logins with 503
        // for 2 s. "wait" is server back → the login that succeeds arrives (the
        // jittered backoff); "work" is that login → station restored (login,
        // subscriptions, station PUT). The daemon runs with backoff-reset-after = 1s
        // and each round starts after the session has lived 1.5 s, so every round is
        // a fresh outage (as after a session of 30 s with the default), not a
        // server flapping.
        let rounds = quick ? 3 : 10
        print("\n== Restore after an outage (server forgets all sessions, refuses logins for 2 s; \(rounds) rounds, backoff-reset-after = 1s)")
        var totals: [Double] = [], waits: [Double] = [], works: [Double] = []
        for _ in 0..<rounds {
            while sim.currentStation == nil || sim.liveSessionIds.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            let before = Set(sim.liveSessionIds)
            sim.inject(.restart(downFor: .seconds(2)))
            let back = ContinuousClock.now + .seconds(2)
            while !(sim.currentStation != nil && !sim.liveSessionIds.isEmpty && Set(sim.liveSessionIds).isDisjoint(with: before)) {
                try await Task.sleep(for: .milliseconds(1))
            }
            let restored = ContinuousClock.now
            let login = sim.requests.last { $0.method == "POST" && $0.path.lowercased() == "/icws/connection" && $0.status == 201 }
            totals.append((restored - back).seconds * 1000)
            if let at = login?.receivedAt {
                waits.append((at - back).seconds * 1000)
                works.append((restored - at).seconds * 1000)
            }
            try await Task.sleep(for: .milliseconds(1500))
        }
        func summary(_ v: [Double]) -> String {
            let s = v.sorted()
            guard !s.isEmpty else { return "-" }
            return "median \(ms(s[s.count / 2])), max \(ms(s[s.count - 1]))"
        }
        print("  server back → station restored: \(summary(totals)); rounds: \(totals.map { String(format: "%.0f", $0) }.joined(separator: ", ")) ms")
        print("    backoff wait (server back → successful login arrives): \(summary(waits))")
        print("    work (login → station and alerting subscriptions → station restored): \(summary(works))")

        print("\n== Start")
        print("  exec → READY=1: \(ms(readyMs))")

        // Polling at 1 s, as public ICWS clients do.
        await daemon.stop()
        notify.stop()
        (daemon, notify, readyMs) = try await startDaemon(messaging: "poll", sim: sim)
        while sim.currentStation == nil || sim.liveSessionIds.count != 1 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .seconds(1))
        print("\n== Polling mode (poll-interval 1 s) next to SSE")
        collector.reset()
        let n = Int(100 * max(seconds, 3))
        await paced(rate: 100, count: n, startSeq: seq) { sim.emit(alertingMessage(seq: $0)) }
        _ = await waitFor(collector, count: n, timeout: .seconds(10))
        let p = Percentiles(collector.snapshot.latencies)
        print("  100/s: p50 \(ms(p.p50)), p99 \(ms(p.p99)), max \(ms(p.max)), lost \(n - collector.count)")

        await daemon.stop()
        notify.stop()
        client.close()
        emitter.close()
        bus.stop()
        await sim.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
