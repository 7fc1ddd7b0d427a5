import Daemon
import Foundation
import ICWS
import Testing
import TestSupport

@Suite struct ConfigurationTests {
    @Test func everyKeyIsDocumentedInTheReadme() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for key in DaemonConfiguration.keys {
            #expect(readme.contains("| `\(key)` |"), "README.md has no row for \(key)")
        }
    }

    /// The README's table is the one the key table prints, and every
    /// documented default is a value its key accepts and already holds.
    @Test func theReadmeTableComesFromTheKeyTable() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let table = ConfigKey.markdownTable()
        #expect(readme.contains("-->\n" + table + "<!-- config-table end -->"), "README.md's table differs from:\n\(table)")
        let base = "server = https://cic\nuser = a\n"
        let defaults = try DaemonConfiguration.parse(base, file: "f")
        for key in ConfigKey.all where key.defaultText.hasPrefix("`") && key.name != "station-ready" {
            let value = key.defaultText.trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            let parsed = try DaemonConfiguration.parse(base + "\(key.name) = \(value)\n", file: "f")
            #expect(parsed == defaults, "\(key.name) = \(value) is not the default it claims to be")
        }
        // The man page's KEYS section: one mdoc item per key, every key.
        let man = ConfigKey.manSection()
        #expect(man.contains(".It Cm logout-on-stop Ns = Ns Ar \"yes/no\"\n"))
        for key in ConfigKey.all { #expect(man.contains(".It Cm \(key.name) Ns = Ns Ar "), "\(key.name) missing from the man page") }
        #expect(!man.split(separator: "\n").contains { $0.hasPrefix(" ") || $0.hasPrefix("'") }, "no text line may start a request")
    }

    @Test func backoffKeysReachTheSupervisor() throws {
        let text = """
            server = https://cic.example.net:8019
            user = agent
            backoff-initial = 250ms
            backoff-cap = 2m
            backoff-reset-after = 5s
            """
        let c = try DaemonConfiguration.parse(text, file: "test.conf")
        let s = c.supervisorConfiguration(password: Secret("x"))
        #expect(s.backoff == BackoffPolicy(initial: .milliseconds(250), cap: .seconds(120)))
        #expect(s.stableAfter == .seconds(5))
        let defaults = try DaemonConfiguration.parse("server = https://h\nuser = a", file: "test.conf").supervisorConfiguration(password: Secret("x"))
        #expect(defaults.backoff == BackoffPolicy(initial: .seconds(1), cap: .seconds(60)))
        #expect(defaults.stableAfter == .seconds(30))
        #expect(throws: ConfigError.self) { try DaemonConfiguration.parse("server = https://h\nuser = a\nbackoff-reset-after = 0", file: "t") }
        #expect(throws: ConfigError.self) { try DaemonConfiguration.parse("server = https://h\nuser = a\nbackoff-initial = 2m", file: "t") }
    }
}

@Suite struct MemoryReclaimerTests {
    @Test func trimsAfterBulkWorkWhenQuietAndRarelyOtherwise() async throws {
        let r = MemoryReclaimer(threshold: 100, quiet: .milliseconds(200), interval: .milliseconds(1500))
        // The first work of any size is trimmed after it stops.
        r.note(items: 1)
        try await eventually("a first trim") { r.trims == 1 }
        // Small work within the interval waits for it.
        r.note(items: 3)
        try await Task.sleep(for: .milliseconds(600))
        #expect(r.trims == 1, "small work waits for the interval")
        try await eventually("the interval passed") { r.trims == 2 }
        // Bulk work is trimmed once it stops, whatever the interval; work that
        // keeps coming postpones it.
        for _ in 0..<10 {
            r.note(items: 20)
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(r.trims == 2)
        try await eventually("a trim after the bulk work") { r.trims == 3 }
        try await Task.sleep(for: .milliseconds(500))
        #expect(r.trims == 3, "one trim per quiet spell")
    }
}

@Suite struct FootprintTests {
    /// Full Foundation links ICU and megabytes of code into the daemon (about
    /// 3 MB more resident memory); its modules use FoundationEssentials.
    @Test func daemonModulesDoNotImportFoundation() throws {
        let modules = ["ICWSProtocol", "ICWS", "DBusKit", "Bridge", "Systemd", "Daemon", "ProcessSupport", "icws-bridged", "Notifier", "icws-bridge-notify"]
        for module in modules {
            let dir = repositoryRoot.appendingPathComponent("Sources/\(module)")
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".swift") }
            #expect(!files.isEmpty, "\(module) has no sources")
            for file in files {
                let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
                // `import Foundation`, `@preconcurrency import Foundation`, `import struct Foundation.URL`, …
                let bad = text.split(separator: "\n").filter { line in
                    let words = line.split(separator: " ")
                    guard let i = words.firstIndex(of: "import") else { return false }
                    return words[(i + 1)...].contains { $0 == "Foundation" || $0.hasPrefix("Foundation.") }
                }
                #expect(bad.isEmpty, "\(module)/\(file): \(bad)")
            }
        }
    }
}

@Suite struct StatusLineTests {
    /// STATUS= names a subscription that is not normal.
    @Test func aSubscriptionThatIsNotNormalIsNamed() {
        var s = SessionStatus()
        s.state = .connected
        s.server = "https://cic"
        s.userId = "agent"
        s.subscriptions = ["alerting": 3, "users": 2, "station": 1]
        let line = statusLine(s, StationStatus())
        #expect(line.contains("subscription alerting faulted, users suspended"), "\(line)")
        s.subscriptions = ["alerting": 1]
        #expect(!statusLine(s, StationStatus()).contains("subscription"))
    }
}
