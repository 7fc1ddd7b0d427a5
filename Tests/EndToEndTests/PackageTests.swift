import Daemon
import Foundation
import ICWSSimulator
import Testing
import TestSupport

/// The Debian package: scripts/package builds it (static release binaries,
/// debhelper, lintian), scripts/package-e2e installs, configures, starts,
/// removes and purges it under a real systemd booted in a namespace.
@Suite(.serialized) struct PackageTests {
    /// One version: debian/changelog's is icws-bridged's (daemonVersion).
    @Test func changelogVersionIsTheDaemonVersion() throws {
        let changelog = try String(contentsOf: repositoryRoot.appendingPathComponent("debian/changelog"), encoding: .utf8)
        let first = changelog.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("icws-bridge (\(daemonVersion)) "), "debian/changelog starts \(first); daemonVersion is \(daemonVersion)")
    }

    /// scripts/install puts DOCS' man pages and completions where Debian looks,
    /// for the installed programs only (no icws-sim page).
    @Test func installPutsDocsWhereDebianLooks() async throws {
        let fm = FileManager.default
        let tmp = fm.temporaryDirectory.appendingPathComponent("docs-\(UUID().uuidString.prefix(8))")
        defer { try? fm.removeItem(at: tmp) }
        let docs = tmp.appendingPathComponent("docs")
        let dest = tmp.appendingPathComponent("dest")
        let programs = ["icws-bridged", "icws-bridgectl", "icws-bridge-notify"]
        let pages = ["man1/icws-bridgectl.1", "man1/icws-sim.1", "man1/icws-bridge-notify.1", "man8/icws-bridged.8", "man5/icws-bridge.conf.5"]
        var files = pages.map { "man/\($0)" }
        for p in programs { files += ["completions/bash/\(p)", "completions/zsh/_\(p)", "completions/fish/\(p).fish"] }
        for f in files {
            let url = docs.appendingPathComponent(f)
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("x\n".utf8).write(to: url)
        }
        // Stand-ins for the binaries: the paths are under test, not the programs.
        let bin = tmp.appendingPathComponent("bin")
        try fm.createDirectory(at: bin, withIntermediateDirectories: true)
        for p in programs { try Data("#!/bin/sh\n".utf8).write(to: bin.appendingPathComponent(p)); try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin.appendingPathComponent(p).path) }
        let r = try await runCommand(
            [repositoryRoot.appendingPathComponent("scripts/install").path],
            environment: ["BIN": bin.path, "DESTDIR": dest.path, "PREFIX": "/usr", "DOCS": docs.path])
        #expect(r.status == 0, "\(r.stderr)")
        var want = ["usr/share/man/man1/icws-bridgectl.1", "usr/share/man/man1/icws-bridge-notify.1", "usr/share/man/man8/icws-bridged.8", "usr/share/man/man5/icws-bridge.conf.5"]
        for p in programs {
            want += ["usr/bin/\(p)", "usr/share/bash-completion/completions/\(p)", "usr/share/zsh/vendor-completions/_\(p)", "usr/share/fish/vendor_completions.d/\(p).fish"]
        }
        for path in want { #expect(fm.fileExists(atPath: dest.appendingPathComponent(path).path), "\(path)") }
        #expect(!fm.fileExists(atPath: dest.appendingPathComponent("usr/share/man/man1/icws-sim.1").path))
        #expect(!fm.fileExists(atPath: dest.appendingPathComponent("usr/bin/icws-sim").path))
        if fm.fileExists(atPath: repositoryRoot.appendingPathComponent("systemd/user/icws-bridge-notify.service").path) {
            #expect(fm.fileExists(atPath: dest.appendingPathComponent("usr/lib/systemd/user/icws-bridge-notify.service").path))
        }
    }

    /// A cold .build-static (CI) compiles the release build from scratch: minutes on 2 cores.
    @Test(.timeLimit(.minutes(30))) func packageBuildsInstallsAndPurges() async throws {
        // scripts/gen-docs builds in .build, which this `swift test` holds locked:
        // the man pages and completions come from DOCS (made before the tests), or none.
        let env = ProcessInfo.processInfo.environment
        let docs = env["DOCS"] ?? ""
        var packageEnv = docs.isEmpty ? ["NO_DOCS": "1"] : ["DOCS": docs]
        // scripts/test hands over a static debug build (3.5 min from cold, where
        // the release build takes 11): the same package, made in the test's time.
        if let bin = env["ICWS_PACKAGE_BIN"], !bin.isEmpty { packageEnv["ICWS_BIN"] = bin }
        let package = try await runCommand(
            [repositoryRoot.appendingPathComponent("scripts/package").path], environment: packageEnv)
        #expect(package.status == 0, "\(package.stdout)\(package.stderr)")
        guard package.status == 0 else { return }
        let deb = repositoryRoot.appendingPathComponent(
            package.stdout.split(separator: "\n").last.map(String.init) ?? "").path
        #expect(deb.hasSuffix("dist/icws-bridge_\(daemonVersion)_amd64.deb"))
        // lintian ran (scripts/package fails on its errors); no error tag.
        let lintian = package.stderr.split(separator: "\n").filter { $0.hasPrefix("E: ") || $0.hasPrefix("W: ") || $0.hasPrefix("I: ") }
        #expect(package.stderr.contains("package: lintian"))
        #expect(!lintian.contains { $0.hasPrefix("E: ") }, "\(lintian.joined(separator: "\n"))")
        if !lintian.isEmpty { print("lintian:\n\(lintian.joined(separator: "\n"))") }

        let sim = try await startSimulator()
        defer { Task { await sim.stop() } }
        let r = try await runCommand([repositoryRoot.appendingPathComponent("scripts/package-e2e").path, deb, String(sim.port)])
        let output = r.stdout + r.stderr
        if r.status == 77 {
            // Only where the machine cannot boot systemd at all; the reason is printed.
            print("package end-to-end test skipped: \(output.split(separator: "\n").last { $0.hasPrefix("SKIP") } ?? "")")
            return
        }
        #expect(r.status == 0, "\(output)")
        for step in [
            "install: enabled, not started", "start: active, READY", "signals: ok", "upgrade: restarted", "remove: stopped",
            "install configured: started by postinst", "purge: icws-agents kept while it has members", "purge: /etc/icws-bridge",
        ] {
            #expect(output.contains(step), "\(step)")
        }
        #expect(sim.requests.contains { $0.method == "PUT" && $0.path.hasSuffix("/connection/station") && $0.body?["readyForInteractions"] == true })
        #expect(sim.requests.last { $0.path.hasSuffix("/connection") && !$0.path.contains("station") }?.method == "DELETE", "logged out when removed")
        if output.contains("relaxed for this machine") { print(output.split(separator: "\n").filter { $0.hasPrefix("NOTE") || $0.hasPrefix("PASS") }.joined(separator: "\n")) }
    }
}
