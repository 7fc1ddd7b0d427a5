import CBenchReceiver
import Foundation
import Synchronization
import ICWSSimulator
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `icws-bench --ab=OTHER_DAEMON`: CPU per 1,000 alerting messages (server-sent
/// events in, signals out) of the daemon under test (`--daemon`), of another
/// build of it (A/B), and of a dbus-python bridge doing the same job (one
/// signal per alert), each alone against a fresh icws-sim and the same
/// dbus-daemon and counting receiver, in alternating rounds; and the floor,
/// a plain C libdbus sender of the same signals. Prints each round and the
/// median of each, and the ratios to the Python bridge.
func runAB(daemonPath: String, otherPath: String, burst: Int, rounds: Int, pythonBridge: String) async throws {
    let bus = try PrivateBus()
    defer { bus.stop() }
    guard let receiver = bench_receiver_start(bus.address, "InteractionAlerting") else {
        throw BenchError(message: "cannot start the counting receiver")
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ab-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    print("icws-bench --ab: \(burst) alerting messages per run, \(rounds) rounds; logs in \(dir.path)")
    print("  A: \(daemonPath)\n  B: \(otherPath)\n  P: \(pythonBridge) (dbus-python)")

    enum Contestant: CaseIterable { case a, b, python }
    func label(_ c: Contestant) -> String {
        switch c {
        case .a: return "A (--daemon)"
        case .b: return "B (--ab)"
        case .python: return "Python bridge"
        }
    }
    var cpu: [Contestant: [Double]] = [:]
    var rates: [Contestant: [Double]] = [:]
    var seq: UInt64 = 1

    /// Sends `n` alerting messages through `sim` and waits until the receiver counted them all.
    func burstThrough(_ sim: ICWSSimulator, pid: pid_t, n: Int) async throws -> (cpuMs: Double, rate: Double) {
        let prepared = sim.prepare((0..<n).map { alertingMessage(seq: seq + UInt64($0)) })
        seq += UInt64(n)
        bench_receiver_reset(receiver)
        let cpu0 = cpuSeconds(pid: pid)
        let start = ContinuousClock.now
        sim.emit(prepared)
        let deadline = ContinuousClock.now + .seconds(120)
        while bench_receiver_count(receiver) < UInt64(n), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
        }
        let elapsed = (ContinuousClock.now - start).seconds
        guard bench_receiver_count(receiver) == UInt64(n) else {
            throw BenchError(message: "\(n - Int(bench_receiver_count(receiver))) of \(n) signals lost")
        }
        return ((cpuSeconds(pid: pid) - cpu0) / Double(n) * 1e6, Double(n) / elapsed)
    }

    for round in 1...rounds {
        for c in Contestant.allCases {
            let sim = try await startSimulator { $0.keepAlive = .seconds(10) }
            sim.setRecordDeliveries(false)
            let log = dir.appendingPathComponent("\(c)-\(round).log").path
            var env = ProcessInfo.processInfo.environment
            env["ICWS_PASSWORD"] = "secret"
            env.removeValue(forKey: "NOTIFY_SOCKET")
            env.removeValue(forKey: "WATCHDOG_USEC")
            let process: ChildProcess
            switch c {
            case .a, .b:
                let config = dir.appendingPathComponent("ab.conf").path
                try """
                    server = http://127.0.0.1:\(sim.port)
                    allow-insecure-http = yes
                    user = agent
                    """.write(toFile: config, atomically: true, encoding: .utf8)
                process = try ChildProcess(
                    [c == .a ? daemonPath : otherPath, "--config", config, "--bus", bus.address, "--log-level", "error"],
                    environment: env, stderrPath: log)
            case .python:
                process = try ChildProcess(
                    ["/usr/bin/python3", pythonBridge, sim.baseURL, bus.address, "agent"], environment: env, stderrPath: log)
            }
            // Warm up: messages until one arrives (the subscription and the stream are up).
            var warm = false
            let until = ContinuousClock.now + .seconds(20)
            while !warm, ContinuousClock.now < until {
                bench_receiver_reset(receiver)
                sim.emit(alertingMessage(seq: 0))
                try await Task.sleep(for: .milliseconds(100))
                warm = bench_receiver_count(receiver) > 0
                if process.poll() != nil { break }
            }
            guard warm else {
                process.killNow()
                await sim.stop()
                throw BenchError(message: "\(label(c)) did not start; see \(log)")
            }
            try await Task.sleep(for: .milliseconds(300))
            // ICWS_AB_PERF=DIR: a perf profile of each contestant's burst (perf report -i DIR/…).
            var perf: ChildProcess?
            if let perfDir = ProcessInfo.processInfo.environment["ICWS_AB_PERF"] {
                perf = try ChildProcess(
                    ["perf", "record", "-F", "1999", "-g", "-o", "\(perfDir)/\(c)-\(round).perf.data", "-p", String(process.pid)],
                    environment: ProcessInfo.processInfo.environment, stderrPath: dir.appendingPathComponent("perf-\(c)-\(round).log").path)
                try await Task.sleep(for: .milliseconds(500))
            }
            let r = try await burstThrough(sim, pid: process.pid, n: burst)
            if let perf {
                perf.signal(SIGINT)
                _ = await perf.wait(timeout: .seconds(20))
            }
            cpu[c, default: []].append(r.cpuMs)
            rates[c, default: []].append(r.rate)
            print("  round \(round) \(pad(label(c), 14)) \(String(format: "%6.1f ms CPU per 1,000   %7.0f messages/s", r.cpuMs, r.rate))")
            await process.stop()
            await sim.stop()
        }
    }
    // The floor: the same signals from a plain libdbus sender (C), building and sending only.
    var floor: [Double] = []
    for _ in 1...rounds {
        bench_receiver_reset(receiver)
        let address = bus.address
        let first = seq
        let n = burst
        let done = Mutex(false)
        Thread.detachNewThread {
            _ = bench_send_alerting(address, "/bench", "io.github.icwsbridge.Bridge1.Interactions", first, UInt64(n))
            done.withLock { $0 = true }
        }
        seq += UInt64(n)
        while !done.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        floor.append(Double(bench_sender_cpu_ns()) / Double(n) / 1000)
    }

    func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    let p = median(cpu[.python] ?? [])
    print("\n  median CPU per 1,000 alerting messages (SSE in, signals out):")
    for c in Contestant.allCases {
        let m = median(cpu[c] ?? [])
        print("    \(pad(label(c), 14)) \(String(format: "%6.1f ms  = %.2f× the Python bridge   (%.0f messages/s)", m, m / p, median(rates[c] ?? [])))")
    }
    let f = median(floor)
    print("    \(pad("floor (C)", 14)) \(String(format: "%6.1f ms  = %.2f× the Python bridge   (building and sending only)", f, f / p))")
}
