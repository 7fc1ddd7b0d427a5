import ArgumentParser
import BridgeContract
import DBusKit
import Foundation
import ICWSProtocol

// MARK: After the call and around it (contract v1.2)

struct WrapUp: InteractionCall {
    static let configuration = CommandConfiguration(
        commandName: "wrapup", abstract: "Set an interaction's wrap-up code (one of its workgroup's codes; see `workgroups`).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Argument(help: "The wrap-up code id.", completion: LiveValues.wrapUpCodes) var code: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.setWrapUpCode(code, timeout: timeout) }
    var done: String { "wrap-up code set" }
}

struct AccountCode: InteractionCall {
    static let configuration = CommandConfiguration(commandName: "account-code", abstract: "Charge an interaction to an account code (1 to 50 digits).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Argument(help: "The account code.") var code: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.setAccountCode(code, timeout: timeout) }
    var done: String { "account code set" }
}

struct Consult: BridgeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Consult before transferring: calls TARGET with the caller held; prints the consult id and the consult leg's object path.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Argument(help: "Whom to consult (number, user or queue).") var target: String
    func run(_ client: BridgeClient) async throws {
        let path = try interactionPath(id)
        let (consultId, leg) = try await client.typed { c throws(BusError) in try await c.interaction(path).consult(target, timeout: c.timeout) }
        print("consult \(Render.word(consultId)) \(leg)")
    }
}

struct SpeakTo: InteractionCall {
    static let configuration = CommandConfiguration(commandName: "speak-to", abstract: "During a consult: speak to the caller, the consulted party, or both.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Argument(help: "caller, consult or both.", completion: .list(["caller", "consult", "both"])) var party: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.speakTo(party, timeout: timeout) }
    var done: String { "speaking to \(party.lowercased())" }
}

struct CompleteTransfer: InteractionCall {
    static let configuration = CommandConfiguration(commandName: "complete-transfer", abstract: "Complete a consult transfer (the caller talks to the consulted party).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.completeTransfer(timeout: timeout) }
    var done: String { "transferred" }
}

struct CancelConsult: InteractionCall {
    static let configuration = CommandConfiguration(commandName: "cancel-consult", abstract: "Cancel a consult (the caller comes back).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.cancelConsult(timeout: timeout) }
    var done: String { "consult cancelled" }
}

struct PauseRecording: InteractionCall {
    static let configuration = CommandConfiguration(
        commandName: "pause-recording",
        abstract: "Pause the interaction's recording (secure pause): for SECONDS (1-86400), until resumed, or for the server's default time.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    @Argument(help: "Seconds (1-86400); none: the server's default.") var seconds: UInt32?
    @Flag(help: "Until resume-recording.") var untilResumed = false
    func validate() throws {
        if untilResumed && seconds != nil { throw ValidationError("give SECONDS or --until-resumed, not both") }
        if let seconds, !(1...86_400).contains(seconds) { throw ValidationError("SECONDS must be 1 to 86400") }
    }
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) {
        try await i.pauseRecording(untilResumed ? UInt32.max : seconds ?? 0, timeout: timeout)
    }
    var done: String { "recording paused" }
}

struct ResumeRecording: InteractionCall {
    static let configuration = CommandConfiguration(commandName: "resume-recording", abstract: "Resume a paused recording.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction id.", completion: LiveValues.interactionIds) var id: String
    func invoke(_ i: InteractionProxy, timeout: Duration) async throws(BusError) { try await i.resumeRecording(timeout: timeout) }
    var done: String { "recording resumed" }
}

struct ConferenceCommand: BridgeCommand {
    static let configuration = CommandConfiguration(commandName: "conference", abstract: "Bring 2 to 16 interactions together; prints the conference id.")
    @OptionGroup var options: BusOptions
    @Argument(help: "The interaction ids.", completion: LiveValues.interactionIds) var ids: [String]
    @Option(help: "Add them to this conference instead of making a new one.") var add: String?
    func validate() throws {
        guard (add == nil ? 2 : 1)...16 ~= ids.count else { throw ValidationError(add == nil ? "name 2 to 16 interactions" : "name 1 to 16 interactions") }
    }
    func run(_ client: BridgeClient) async throws {
        let paths = try ids.map(interactionPath)
        if let add {
            try await client.typed { c throws(BusError) in try await c.interactions.addToConference(add, paths, timeout: c.timeout) }
            print("added to \(Render.word(add))")
        } else {
            let id = try await client.typed { c throws(BusError) in try await c.interactions.conference(paths, timeout: c.timeout) }
            print("conference \(Render.word(id))")
        }
    }
}

/// An interaction id (or object path) as its object path.
func interactionPath(_ id: String) throws -> String {
    if id.hasPrefix("/") { return id }
    guard let p = BridgeNames.interactionPath(id) else { throw CLIError(code: 64, message: "an interaction id is required") }
    return p
}

// MARK: Workgroups

/// One workgroup object as a line for people.
struct WorkgroupLine {
    var properties: DBusValue

    static let figures: [(key: String, label: String)] = [
        ("InteractionsWaiting", "waiting"), ("LongestWaitSince", "longest"), ("AgentsAvailable", "available"), ("AgentsLoggedIn", "logged-in"),
        ("PercentAvailable", "%available"), ("AnsweredThisShift", "answered"), ("AbandonedThisShift", "abandoned"),
    ]

    /// `waiting=3 longest=42s available=2 …`: the figures the server gives now.
    static func figures(_ statistics: DBusValue?, now: Date = Date()) -> String {
        figures.compactMap { f -> String? in
            guard let v = statistics?[f.key]?.unwrapped else { return nil }
            switch (f.key, v) {
            case ("LongestWaitSince", .int64(let since)): return "\(f.label)=\(max(0, Int64(now.timeIntervalSince1970) - since))s"
            case (_, .double(let d)): return "\(f.label)=\(String(format: "%.1f", d))"
            default: return "\(f.label)=\(Render.text(v))"
            }
        }.joined(separator: " ")
    }

    var line: String {
        let p = properties
        var text = "workgroup \(Render.word(p["Id"]?.stringValue)) \(Render.quote(p["Name"]?.stringValue ?? "")) \(p["Activated"]?.boolValue == true ? "activated" : "not-activated")"
        let codes = (p["WrapUpCodes"]?.arrayElements ?? []).compactMap { c -> String? in
            guard case .structure(let f) = c, f.count == 2 else { return nil }
            return f[0].stringValue
        }
        if !codes.isEmpty { text += " codes=" + codes.map { Render.word($0) }.joined(separator: ",") }
        if let t = p["WrapUpTimeout"]?.uint32Value, t > 0 { text += " wrap-up=\(t)s" }
        let f = Self.figures(p["Statistics"])
        if !f.isEmpty { text += " " + f }
        return text
    }
}

struct Workgroups: BridgeCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the user's workgroups: activation, wrap-up codes and the queue figures (--watch: refreshed in place).")
    @OptionGroup var options: BusOptions
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Print the list again whenever a figure changes, until interrupted.") var watch = false
    func run(_ client: BridgeClient) async throws {
        try await show(client)
        guard watch else { return }
        do {
            try await client.connection.addMatch(
                "type='signal',sender='\(BridgeNames.busName)',interface='org.freedesktop.DBus.Properties',path_namespace='\(BridgeNames.objectPath)/Workgroup'")
        } catch { throw CLIError.from(error, bus: client.busName) }
        for await _ in client.connection.signals() {
            if !json { FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8)) }
            try await show(client)
        }
        throw CLIError(code: 69, message: "the bus connection ended")
    }

    func show(_ client: BridgeClient) async throws {
        let objects = try await client.workgroupObjects()
        if json {
            print("[" + objects.map { "{\"path\":\(Render.quote($0.path)),\"properties\":\(Render.json($0.properties))}" }.joined(separator: ",") + "]")
        } else if objects.isEmpty {
            print("(no workgroups)")
        } else {
            for o in objects { print(WorkgroupLine(properties: o.properties).line) }
        }
    }
}

struct Activate: BridgeCommand {
    static let configuration = CommandConfiguration(abstract: "Activate yourself in a workgroup (--off deactivates).")
    @OptionGroup var options: BusOptions
    @Argument(help: "The workgroup id.", completion: LiveValues.workgroupIds) var workgroup: String
    @Flag(help: "Deactivate.") var off = false
    func run(_ client: BridgeClient) async throws {
        guard let path = BridgeNames.workgroupPath(workgroup) else { throw CLIError(code: 64, message: "a workgroup id is required") }
        try await client.typed { c throws(BusError) in try await WorkgroupProxy(c.connection, path: path).setActivated(!off, timeout: c.timeout) }
        print(off ? "deactivated in \(workgroup)" : "activated in \(workgroup)")
    }
}
