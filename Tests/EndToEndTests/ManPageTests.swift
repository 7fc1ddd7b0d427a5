import Daemon
import Foundation
import Testing
import TestSupport

/// The man pages and completions scripts/gen-docs made before the tests
/// (scripts/test sets DOCS; the plugin cannot run inside `swift test`).
@Suite struct ManPageTests {
    static let docs = ProcessInfo.processInfo.environment["DOCS"].map { URL(fileURLWithPath: $0) }

    @Test(.enabled(if: docs != nil, "DOCS is not set: run scripts/test, or scripts/gen-docs DIR and DOCS=DIR"))
    func everyPageAndCompletionIsThereAndSaysWhatItShould() async throws {
        let docs = try #require(Self.docs)
        let page = { (p: String) throws -> String in try String(contentsOf: docs.appendingPathComponent("man/\(p)"), encoding: .utf8) }
        // The configuration page documents every key of the parser's own table.
        let conf = try page("man5/icws-bridge.conf.5")
        for key in ConfigKey.all { #expect(conf.contains(".It Cm \(key.name) Ns = Ns Ar "), "icws-bridge.conf(5) lacks \(key.name)") }
        #expect(conf.contains(".Dt ICWS-BRIDGE.CONF 5") && !conf.contains("@KEYS@") && !conf.contains("@DATE@"))
        // The command pages come from the commands (their subcommands and options).
        let ctl = try page("man1/icws-bridgectl.1")
        for word in ["set-status", "monitor", "Fl v , -verbose", "answer", "dial", "wrapup", "consult", "pause-recording", "workgroups", "activate"] { #expect(ctl.contains(word), "icws-bridgectl(1) lacks \(word)") }
        #expect(try page("man8/icws-bridged.8").contains(".Dt ICWS-BRIDGED 8"))
        #expect(try page("man8/icws-bridged.8").contains("Fl -check-config"))
        #expect(try page("man1/icws-bridge-notify.1").contains("Fl -notifications-bus"))
        #expect(try page("man1/icws-sim.1").contains(".Dt ICWS-SIM 1"))
        // Every page renders without a warning (gen-docs already refused any).
        for p in ["man1/icws-bridgectl.1", "man1/icws-bridge-notify.1", "man1/icws-sim.1", "man5/icws-bridge.conf.5", "man8/icws-bridged.8"] {
            let r = try await runCommand(["mandoc", "-T", "lint", "-W", "warning", docs.appendingPathComponent("man/\(p)").path])
            #expect(r.status == 0 && r.stdout.isEmpty && r.stderr.isEmpty, "\(p): \(r.stdout)\(r.stderr)")
        }
        // The completion scripts are valid shell.
        for c in ["icws-bridged", "icws-bridgectl", "icws-bridge-notify"] {
            let bash = try await runCommand(["bash", "-n", docs.appendingPathComponent("completions/bash/\(c)").path])
            #expect(bash.status == 0, "\(c): \(bash.stderr)")
            for f in ["completions/zsh/_\(c)", "completions/fish/\(c).fish"] {
                #expect(FileManager.default.fileExists(atPath: docs.appendingPathComponent(f).path), "\(f)")
            }
        }
    }
}
