import Foundation
import ICWSSimulator
import Testing
import TestSupport

/// The shipped unit under a real systemd booted in a namespace (scripts/systemd-e2e).
@Suite(.serialized, .timeLimit(.minutes(5))) struct SystemdTests {
    @Test func unitUnderRealSystemd() async throws {
        let sim = try await startSimulator()
        defer { Task { await sim.stop() } }
        let script = repositoryRoot.appendingPathComponent("scripts/systemd-e2e").path
        let r = try await runCommand([script, binDirectory.path, String(sim.port)])
        let output = r.stdout + r.stderr
        if r.status == 77 {
            // Only where the machine cannot boot systemd at all; the reason is printed.
            print("systemd end-to-end test skipped: \(output.split(separator: "\n").last { $0.hasPrefix("SKIP") } ?? "")")
            return
        }
        #expect(r.status == 0, "\(output)")
        #expect(output.contains("alice: SetReady allowed") && output.contains("bob: SetReady refused"))
        #expect(output.contains("reload: ok") && output.contains("stop: ok"))
        #expect(sim.requests.contains { $0.method == "PUT" && $0.path.hasSuffix("/connection/station") && $0.body?["readyForInteractions"] == true })
        #expect(sim.requests.last { $0.path.hasSuffix("/connection") && !$0.path.contains("station") }?.method == "DELETE", "logged out on stop")
        if output.contains("relaxed for this machine") { print(output.split(separator: "\n").filter { $0.hasPrefix("NOTE") || $0.hasPrefix("PASS") }.joined(separator: "\n")) }
    }

    @Test func installPutsFilesWhereADistributionWould() async throws {
        let dest = FileManager.default.temporaryDirectory.appendingPathComponent("destdir-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dest) }
        let r = try await runCommand(
            [repositoryRoot.appendingPathComponent("scripts/install").path],
            environment: ["BIN": binDirectory.path, "DESTDIR": dest.path, "PREFIX": "/usr"])
        #expect(r.status == 0, "\(r.stderr)")
        for path in [
            "usr/bin/icws-bridged", "usr/bin/icws-bridgectl", "usr/lib/systemd/system/icws-bridge.service",
            "usr/lib/systemd/user/icws-bridge.service", "usr/lib/sysusers.d/icws-bridge.conf",
            "usr/share/dbus-1/system.d/io.github.icwsbridge.Bridge1.conf",
            "usr/share/dbus-1/system-services/io.github.icwsbridge.Bridge1.service",
            "usr/share/dbus-1/services/io.github.icwsbridge.Bridge1.service",
            "usr/share/dbus-1/interfaces/io.github.icwsbridge.Bridge1.Station.xml",
            "usr/share/doc/icws-bridge/icws-bridge.conf.example", "etc/icws-bridge/icws-bridge.conf",
        ] {
            #expect(FileManager.default.fileExists(atPath: dest.appendingPathComponent(path).path), "\(path)")
        }
        let unit = try String(contentsOf: dest.appendingPathComponent("usr/lib/systemd/system/icws-bridge.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/icws-bridged "))
    }
}
