import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

struct Connect: BridgeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect a station.",
        discussion: """
            Examples:
              icws-bridgectl connect workstation 7001 --ready --media call,chat
              icws-bridgectl connect remote-workstation 7001 --remote-number +13175550100
              icws-bridgectl connect remote-number +13175550100 --persistent
              icws-bridgectl connect stationless --media chat,email
            """)
    @OptionGroup var options: BusOptions
    @Argument(help: "workstation, remote-workstation, remote-number or stationless.") var kind: String
    @Argument(help: "The workstation name, or the number for remote-number.") var target: String?
    @Option(help: "Remote number (remote-workstation).") var remoteNumber: String?
    @Flag(help: "Keep a persistent call leg (remote-number).") var persistent = false
    @Option(help: "Media types: call,chat,email,generic,callback,smsMessage,workItem,directMessage,socialConversation.") var media: String?
    @Flag(help: "Ready for interactions right away.") var ready = false
    @Option(help: "stationConnectionMode (0, 1 or 2).") var mode: UInt32?

    func run(_ client: BridgeClient) async throws {
        let kinds = ["workstation": "workstation", "remote-workstation": "remoteWorkstation", "remoteworkstation": "remoteWorkstation", "remote-number": "remoteNumber", "remotenumber": "remoteNumber", "stationless": "stationless"]
        guard let type = kinds[kind.lowercased()] else { throw CLIError(code: 64, message: "unknown station kind \(kind)") }
        var settings: [(String, DBusValue)] = [("type", .string(type))]
        switch type {
        case "workstation", "remoteWorkstation":
            guard let target else { throw CLIError(code: 64, message: "\(kind) needs a workstation name") }
            settings.append(("workstation", .string(target)))
            if let remoteNumber { settings.append(("remoteNumber", .string(remoteNumber))) }
        case "remoteNumber":
            guard let number = target ?? remoteNumber else { throw CLIError(code: 64, message: "remote-number needs a number") }
            settings.append(("remoteNumber", .string(number)))
            if persistent { settings.append(("persistentConnection", .bool(true))) }
        default: break
        }
        if let media { settings.append(("supportedMediaTypes", .strings(media.split(separator: ",").map(String.init)))) }
        settings.append(("readyForInteractions", .bool(ready)))
        if let mode { settings.append(("stationConnectionMode", .uint32(mode))) }
        try await client.typed { c throws(BusError) in try await c.station.connect(.vardict(settings), timeout: c.timeout) }
        print("station connected\(ready ? ", ready" : "")")
    }
}

struct Disconnect: SimpleCall {
    static let configuration = CommandConfiguration(abstract: "Disconnect the station.")
    @OptionGroup var options: BusOptions
    func invoke(_ c: BridgeClient) async throws(BusError) { try await c.station.disconnect(timeout: c.timeout) }
    var done: String { "station disconnected" }
}

struct Ready: SimpleCall {
    static let configuration = CommandConfiguration(abstract: "Go ready for ACD interactions.")
    @OptionGroup var options: BusOptions
    func invoke(_ c: BridgeClient) async throws(BusError) { try await c.station.setReady(true, timeout: c.timeout) }
    var done: String { "ready" }
}

struct NotReady: SimpleCall {
    static let configuration = CommandConfiguration(commandName: "not-ready", abstract: "Go not ready.")
    @OptionGroup var options: BusOptions
    func invoke(_ c: BridgeClient) async throws(BusError) { try await c.station.setReady(false, timeout: c.timeout) }
    var done: String { "not ready" }
}

struct SipCredentials: BridgeCommand {
    static let configuration = CommandConfiguration(commandName: "sip-credentials", abstract: "Print the station's SIP user, password and address (agents and root only).")
    @OptionGroup var options: BusOptions
    func run(_ client: BridgeClient) async throws {
        let (user, password, address) = try await client.typed { c throws(BusError) in try await c.station.getSipCredentials(timeout: c.timeout) }
        print("user=\(user)\npassword=\(password)\naddress=\(address)")
    }
}
