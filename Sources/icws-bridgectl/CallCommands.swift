import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

// MARK: The agent's own interactions (contract v1.1)

/// One interaction object as a line for people.
struct Call {
    var path: String
    var properties: DBusValue


    static func id(fromPath path: String) -> String {
        path.hasPrefix(BridgeNames.interactionPrefix) ? String(path.dropFirst(BridgeNames.interactionPrefix.count)) : path
    }

    /// A property as `monitor` shows it (State by name).
    static func describe(_ p: (String, DBusValue)) -> String {
        if p.0 == Contract.Interaction.state.name, let u = p.1.uint32Value { return InteractionState(rawValue: u)?.name ?? "\(u)" }
        if p.0 == Contract.Interaction.direction.name, let u = p.1.uint32Value { return CallDirection(rawValue: u)?.name ?? "\(u)" }
        return Render.text(p.1)
    }

    var line: String {
        let p = properties
        let state = p["State"]?.uint32Value.map { InteractionState(rawValue: $0)?.name ?? "\($0)" } ?? "-"
        let direction = p["Direction"]?.uint32Value.map { CallDirection(bus: $0).name } ?? ""
        var text = "call \(Render.word(p["Id"]?.stringValue ?? Self.id(fromPath: path))) \(Render.word(p["Type"]?.stringValue)) \(state)"
        if !direction.isEmpty { text += " \(direction)" }
        text += " \(Render.quote(p["RemoteName"]?.stringValue ?? "")) \(Render.word(p["RemoteAddress"]?.stringValue))"
        if p["Muted"]?.boolValue == true { text += " muted" }
        return text
    }
}

struct Calls: BridgeCommand {
    static let configuration = CommandConfiguration(abstract: "List the agent's own interactions (ringing, connected, held, ...).")
    @OptionGroup var options: BusOptions
    @Flag(help: "Print JSON.") var json = false
    func run(_ client: BridgeClient) async throws {
        let objects = try await client.interactionObjects()
        if json {
            let items = objects.map { "{\"path\":\(Render.quote($0.path)),\"properties\":\(Render.json($0.properties))}" }
            print("[" + items.joined(separator: ",") + "]")
            return
        }
        for o in objects {
            print(Call(path: o.path, properties: o.properties).line)
        }
    }
}

/// A call-control command on one interaction, named by its id (or object path).
protocol InteractionCall: BridgeCommand {
    var id: String { get }
    /// The call, through the interaction's typed proxy.
    func invoke(_ interaction: InteractionProxy, timeout: Duration) async throws(BusError)
    /// What to print when it worked.
    var done: String { get }
}

extension InteractionCall {
    func run(_ client: BridgeClient) async throws {
        let path: String
        if id.hasPrefix("/") {
            path = id
        } else if let p = BridgeNames.interactionPath(id) {
            path = p
        } else {
            throw CLIError(code: 64, message: "an interaction id is required")
        }
        try await client.typed { c throws(BusError) in try await invoke(c.interaction(path), timeout: c.timeout) }
        print(done)
    }
}

struct Answer: InteractionCall {
    static let configuration = CommandConfiguration(abstract: "Pick up an interaction (answer a ringing call, take back a held one).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.pickup(timeout: timeout) }
    var done: String { "picked up" }
}

struct Hangup: InteractionCall {
    static let configuration = CommandConfiguration(abstract: "Disconnect an interaction.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.disconnect(timeout: timeout) }
    var done: String { "disconnected" }
}

struct Hold: InteractionCall {
    static let configuration = CommandConfiguration(abstract: "Put an interaction on hold (--off takes it off hold).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Flag(help: "Take it off hold.") var off = false
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.hold(!off, timeout: timeout) }
    var done: String { off ? "off hold" : "on hold" }
}

struct Mute: InteractionCall {
    static let configuration = CommandConfiguration(abstract: "Mute an interaction (--off unmutes).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Flag(help: "Unmute.") var off = false
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.mute(!off, timeout: timeout) }
    var done: String { off ? "unmuted" : "muted" }
}

struct Digits: InteractionCall {
    static let configuration = CommandConfiguration(abstract: "Send DTMF digits (0-9 * # A-D) on an interaction.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Argument(help: "The digits.") var digits: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.sendDigits(digits, timeout: timeout) }
    var done: String { "digits sent" }
}

struct Transfer: InteractionCall {
    static let configuration = CommandConfiguration(abstract: "Blind-transfer an interaction to a number, user or queue.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Argument(help: "Where to.") var target: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.blindTransfer(target, timeout: timeout) }
    var done: String { "transferred" }
}

struct Voicemail: InteractionCall {
    static let configuration = CommandConfiguration(abstract: "Send an interaction to voicemail.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.sendToVoicemail(timeout: timeout) }
    var done: String { "sent to voicemail" }
}

struct Dial: BridgeCommand {
    static let configuration = CommandConfiguration(abstract: "Make a call; prints the new interaction's object path.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The number (or user, or queue) to call.") var target: String
    @Option(help: "Dial on behalf of this workgroup.", completion: LiveValues.workgroupIds) var workgroup: String?
    @Option(help: "Charge the call to this account code (1 to 50 digits).") var accountCode: String?
    func run(_ client: BridgeClient) async throws {
        var opts: [(String, DBusValue)] = []
        if let workgroup { opts.append(("workgroup", .string(workgroup))) }
        if let accountCode { opts.append(("accountCode", .string(accountCode))) }
        let path = try await client.typed { c throws(BusError) in try await c.interactions.dial(target, .vardict(opts), timeout: c.timeout) }
        print(path)
    }
}
