import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

struct Users: BridgeCommand {
    static let configuration = CommandConfiguration(abstract: "List the user directory.")
    @OptionGroup var options: BusOptions
    @Flag(help: "Print JSON.") var json = false
    func run(_ client: BridgeClient) async throws {
        let users = try await client.typed { c throws(BusError) in try await c.users.getUsers(timeout: c.timeout) }
        if json {
            print(Render.json(users))
            return
        }
        for u in users.arrayElements ?? [] {
            let id = u["id"]?.stringValue ?? ""
            let rest = (u.dictEntries ?? []).filter { $0.0 != "id" && $0.0 != "displayName" }
                .map { "\($0.0)=\(Render.text($0.1))" }.joined(separator: " ")
            print("\(id)\t\(u["displayName"]?.stringValue ?? "")\t\(rest)")
        }
    }
}
