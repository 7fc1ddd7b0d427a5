import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

struct Status: BridgeCommand {
    static let configuration = CommandConfiguration(abstract: "Session, agent status, station, ready flag, alerting and user counts.")
    @OptionGroup var options: BusOptions
    @Flag(help: "Print JSON.") var json = false

    func run(_ client: BridgeClient) async throws {
        let session = try await client.properties(BridgeNames.session)
        let station = try await client.properties(BridgeNames.station)
        let interactions = try await client.properties(BridgeNames.interactions)
        let users = try await client.properties(BridgeNames.users)
        let agent = try await client.properties(BridgeNames.status)
        if json {
            print("{\"session\":\(Render.json(session)),\"status\":\(Render.json(agent)),\"station\":\(Render.json(station)),\"alerting\":\(Render.json(interactions["Alerting"] ?? .vardicts([]))),\"users\":\(Render.json(users["Count"] ?? .uint32(0)))}")
            return
        }
        let raw = session["State"]?.uint32Value ?? 0
        print("Session:    \(SessionState(rawValue: raw)?.name ?? "\(raw)") (\(session["MessagingMode"]?.stringValue ?? "-"))")
        print("Server:     \(session["Server"]?.stringValue ?? "-")")
        print("User:       \(session["UserId"]?.stringValue ?? "-") (\(session["UserDisplayName"]?.stringValue ?? ""))")
        let lastError = session["LastError"]?.stringValue ?? ""
        print("Last error: \(lastError.isEmpty ? "-" : lastError)")
        print("Reconnects: \(session["ReconnectCount"]?.uint32Value ?? 0)")
        // A subscription that is not normal (2 suspended, 3 faulted) is named.
        let unwell = (session["Subscriptions"]?.dictEntries ?? []).compactMap { e -> String? in
            guard let code = e.1.uint32Value else { return nil }
            let health = SubscriptionHealth(bus: code)
            return health == .suspended || health == .faulted ? "\(e.0) \(health.name)" : nil
        }
        if !unwell.isEmpty { print("Subscriptions: \(unwell.joined(separator: ", "))") }
        let statusId = agent["StatusId"]?.stringValue ?? ""
        if !statusId.isEmpty {
            var text = agent["StatusText"]?.stringValue ?? statusId
            let notes = agent["Notes"]?.stringValue ?? ""
            if !notes.isEmpty { text += " (\(notes))" }
            print("Status:     \(text)")
        }
        let connected = station["Connected"]?.boolValue ?? false
        let info = station["Info"]
        let id = info?["id"]?.stringValue ?? station["Settings"]?["workstation"]?.stringValue ?? ""
        print("Station:    \(connected ? "\(id.isEmpty ? "connected" : id) (\(station["Settings"]?["type"]?.stringValue ?? "?"))" : "none")")
        print("Ready:      \(station["Ready"]?.boolValue == true ? "yes" : "no")")
        print("Alerting:   \(interactions["Alerting"]?.arrayElements?.count ?? 0)")
        print("Users:      \(users["Count"]?.uint32Value ?? 0)")
    }
}

struct Reconnect: SimpleCall {
    static let configuration = CommandConfiguration(abstract: "Make a new ICWS session now (also from stopped).")
    @OptionGroup var options: BusOptions
    func invoke(_ c: BridgeClient) async throws(BusError) { try await c.session.reconnect(timeout: c.timeout) }
    var done: String { "reconnecting" }
}

struct Logout: SimpleCall {
    static let configuration = CommandConfiguration(abstract: "Log the session out; it stays stopped until reconnect.")
    @OptionGroup var options: BusOptions
    func invoke(_ c: BridgeClient) async throws(BusError) { try await c.session.disconnect(timeout: c.timeout) }
    var done: String { "logged out" }
}
