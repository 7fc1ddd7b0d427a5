import Bridge
import DBusKit
import Foundation
import ICWS
import ICWSSimulator
import Testing
import TestSupport

/// The shell completions ArgumentParser generates, run by a real bash, with
/// the live values (interaction ids, status ids) asked from the running daemon.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CompletionTests {
    /// What bash's completion of `words` (the last one being completed) offers.
    func complete(_ script: String, _ words: [String]) async throws -> [String] {
        let quoted = words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let program = """
            source \(script)
            COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
            cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
            PATH=\(binDirectory.path):$PATH _icws-bridgectl icws-bridgectl "$cur" "$prev"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let r = try await runCommand(["bash", "-c", program])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    @Test func bashCompletesInteractionAndStatusIdsFromTheDaemon() async throws {
        let rig = try await DaemonRig.start()
        try await eventually("connected") { try await rig.property(BridgeNames.session, "State") == "u 2" }
        let script = rig.dir.appendingPathComponent("icws-bridgectl.bash").path
        let gen = try await runCommand([binary("icws-bridgectl"), "--generate-completion-script", "bash"])
        try gen.stdout.write(toFile: script, atomically: true, encoding: .utf8)

        #expect(try await complete(script, ["icws-bridgectl", "ans"]) == ["answer"])
        let id = rig.sim.startCall(name: "ACME Corp", address: "+13175550100")
        try await eventually("the call's object") { (try await rig.ctl(["calls"])).stdout.contains(id) }
        let ids = try await complete(script, ["icws-bridgectl", "answer", "--bus", rig.bus.address, ""])
        #expect(ids == [id], "\(ids)")
        // Only ids that start with what is typed.
        #expect(try await complete(script, ["icws-bridgectl", "hangup", "--bus", rig.bus.address, "zzz"]).isEmpty)

        try await eventually("selectable statuses") { (try await rig.ctl(["statuses"])).stdout.contains("Available") }
        let statuses = try await complete(script, ["icws-bridgectl", "set-status", "--bus", rig.bus.address, "Av"])
        #expect(statuses.contains("Available"), "\(statuses)")
        #expect(statuses.allSatisfy { $0.hasPrefix("Av") }, "\(statuses)")

        #expect(try await complete(script, ["icws-bridgectl", "set-status", "--bus", rig.bus.address, "Do"]).contains("Do Not Disturb"), "spaces inside an id")

        // A hostile server's ids: nothing the shell would expand is offered, and nothing runs.
        let marker = rig.dir.appendingPathComponent("pwned").path
        rig.sim.emit([
            "__type": .string(ICWSMessage.TypeURN.queueContents), "isDelta": true, "subscriptionId": "icws-bridge-my-interactions",
            "interactionsAdded": [
                ["interactionId": .string("$(touch \(marker))"), "attributes": ["Eic_State": "A"]],
                ["interactionId": .string("`touch \(marker)`"), "attributes": ["Eic_State": "A"]],
                ["interactionId": "*", "attributes": ["Eic_State": "A"]],
            ],
        ])
        try await eventually("hostile objects") { (try await rig.ctl(["calls"])).stdout.contains("touch") }
        let offered = try await complete(script, ["icws-bridgectl", "answer", "--bus", rig.bus.address, ""])
        #expect(offered == [id], "\(offered)")
        #expect(!FileManager.default.fileExists(atPath: marker))

        // No daemon on that bus: nothing offered, no error on the terminal.
        await rig.daemon.stop()
        let none = try await complete(script, ["icws-bridgectl", "answer", "--bus", rig.bus.address, ""])
        #expect(none.isEmpty, "\(none)")
        await rig.stop()
    }
}
