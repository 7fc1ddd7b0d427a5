import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

// MARK: Agent status (contract v1.1)

struct Statuses: BridgeCommand {
    static let configuration = CommandConfiguration(abstract: "List the statuses this agent may select.")
    @OptionGroup var options: BusOptions
    @Flag(help: "Print JSON.") var json = false
    func run(_ client: BridgeClient) async throws {
        let agent = try await client.properties(BridgeNames.status)
        let list = agent["Selectable"] ?? .vardicts([])
        if json {
            print(Render.json(list))
            return
        }
        let current = (agent["StatusId"]?.stringValue ?? "").lowercased()
        for s in list.arrayElements ?? [] {
            let id = s["statusId"]?.stringValue ?? ""
            var flags: [String] = []
            if s["isAcdStatus"]?.boolValue == true { flags.append("acd") }
            if s["isDoNotDisturbStatus"]?.boolValue == true { flags.append("dnd") }
            if s["isAfterCallWorkStatus"]?.boolValue == true { flags.append("acw") }
            print("\(id.lowercased() == current ? "*" : " ") \(id)\t\(s["messageText"]?.stringValue ?? "")\(flags.isEmpty ? "" : "\t[" + flags.joined(separator: ",") + "]")")
        }
    }
}

struct SetStatus: BridgeCommand {
    static let configuration = CommandConfiguration(commandName: "set-status", abstract: "Set the agent's status (one of `statuses`; any case).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The status id.", completion: LiveValues.statusIds) var id: String
    @Option(help: "Notes to go with it.") var notes: String?
    @Option(help: "Forward number (forward statuses).") var forwardNumber: String?
    func run(_ client: BridgeClient) async throws {
        var opts: [(String, DBusValue)] = []
        if let notes { opts.append(("notes", .string(notes))) }
        if let forwardNumber { opts.append(("forwardNumber", .string(forwardNumber))) }
        try await client.typed { c throws(BusError) in try await c.status.setStatus(id, .vardict(opts), timeout: c.timeout) }
        print("status set")
    }
}
