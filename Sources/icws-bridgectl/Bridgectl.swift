import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

struct BusOptions: ParsableArguments {
    @Option(name: .long, help: "Bus: system, session, or a D-Bus address (default: $ICWS_BRIDGE_BUS, else system).")
    var bus = ProcessInfo.processInfo.environment["ICWS_BRIDGE_BUS"] ?? "system"
    @Option(name: .long, help: "Seconds to wait for a reply.") var timeout: Double = 30
}

/// Talks to icws-bridged; turns bus errors into messages a person can act on.
struct BridgeClient {
    let connection: BusConnection
    let busName: String
    let timeout: Duration

    static func open(_ options: BusOptions) async throws -> BridgeClient {
        var logger = Logger(label: "icws-bridgectl")
        logger.logLevel = .critical
        do {
            let c = try await BusConnection.connect(BusAddress(parsing: options.bus), logger: logger)
            return BridgeClient(connection: c, busName: options.bus, timeout: .milliseconds(Int64(options.timeout * 1000)))
        } catch {
            throw CLIError(code: 69, message: "cannot connect to the \(options.bus) bus: \(error.message)")
        }
    }

    func call(_ interface: String, _ member: String, _ args: [DBusValue] = []) async throws -> [DBusValue] {
        do {
            return try await connection.call(
                destination: BridgeNames.busName, path: BridgeNames.objectPath, interface: interface, member: member,
                arguments: args, timeout: timeout)
        } catch {
            throw CLIError.from(error, bus: busName)
        }
    }

    /// A method of another object (an interaction's).
    func call(path: String, _ interface: String, _ member: String, _ args: [DBusValue] = []) async throws -> [DBusValue] {
        do {
            return try await connection.call(
                destination: BridgeNames.busName, path: path, interface: interface, member: member, arguments: args, timeout: timeout)
        } catch {
            throw CLIError.from(error, bus: busName)
        }
    }

    /// Runs calls through the typed proxies generated from the XML, with the
    /// exit codes of `CLIError`.
    func typed<T>(_ body: (BridgeClient) async throws(BusError) -> T) async throws -> T {
        do throws(BusError) { return try await body(self) } catch { throw CLIError.from(error, bus: busName) }
    }

    var session: SessionProxy { SessionProxy(connection) }
    var station: StationProxy { StationProxy(connection) }
    var users: UsersProxy { UsersProxy(connection) }
    var status: StatusProxy { StatusProxy(connection) }
    var interactions: InteractionsProxy { InteractionsProxy(connection) }
    func interaction(_ path: String) -> InteractionProxy { InteractionProxy(connection, path: path) }

    func properties(_ interface: String) async throws -> DBusValue {
        try await first(call("org.freedesktop.DBus.Properties", "GetAll", [.string(interface)]))
    }

    /// The user's workgroup objects (ObjectManager), path and properties.
    func workgroupObjects() async throws -> [(path: String, properties: DBusValue)] {
        BridgeNames.workgroupObjects(inManagedObjects: try first(await call(BridgeNames.objectManager, "GetManagedObjects")))
    }

    /// The agent's interaction objects (ObjectManager), path and properties.
    func interactionObjects() async throws -> [(path: String, properties: DBusValue)] {
        BridgeNames.interactionObjects(inManagedObjects: try first(await call(BridgeNames.objectManager, "GetManagedObjects")))
    }

    /// The reply's one value; whoever owns the name may answer anything.
    func first(_ reply: [DBusValue]) throws -> DBusValue {
        guard let v = reply.first else { throw CLIError(code: 1, message: "\(BridgeNames.busName) sent an empty reply") }
        return v
    }
}

struct CLIError: Error, CustomStringConvertible {
    var code: Int32
    var message: String
    var description: String { message }

    static func from(_ e: BusError, bus: String) -> CLIError {
        switch e.name {
        case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
            return CLIError(code: 69, message: "icws-bridged is not running on the \(bus) bus (nobody owns \(BridgeNames.busName))")
        case "org.freedesktop.DBus.Error.AccessDenied":
            return CLIError(code: 77, message: "not allowed: \(e.message)\n(station and session control need root or membership in the icws-agents group)")
        case "org.freedesktop.DBus.Error.NoReply":
            return CLIError(code: 75, message: "icws-bridged did not answer in time")
        default:
            let short = e.name.hasPrefix(BridgeNames.errorPrefix) ? String(e.name.dropFirst(BridgeNames.errorPrefix.count)) : e.name
            return CLIError(code: 1, message: "\(short): \(e.message)")
        }
    }
}

/// D-Bus values as JSON (for --json) and as compact text (for people).
enum Render {
    static func json(_ v: DBusValue) -> String {
        switch v {
        case .byte(let x): return "\(x)"
        case .bool(let x): return x ? "true" : "false"
        case .int16(let x): return "\(x)"
        case .uint16(let x): return "\(x)"
        case .int32(let x): return "\(x)"
        case .uint32(let x): return "\(x)"
        case .int64(let x): return "\(x)"
        case .uint64(let x): return "\(x)"
        case .double(let x): return x.isFinite ? "\(x)" : "null"
        case .string(let s), .objectPath(let s), .signature(let s): return quote(s)
        case .array(_, let items): return "[" + items.map(json).joined(separator: ",") + "]"
        case .dict(_, _, let entries):
            return "{" + entries.map { quote($0.key.stringValue ?? $0.key.description) + ":" + json($0.value) }.joined(separator: ",") + "}"
        case .structure(let f): return "[" + f.map(json).joined(separator: ",") + "]"
        case .variant(let inner): return json(inner)
        }
    }

    static func quote(_ s: String) -> String { JSONValue.string(s).serialized() }

    /// A word of a line for people: as it is, or quoted when it has a space or a control character ("" stays empty).
    static func word(_ s: String?) -> String {
        guard let s, !s.isEmpty else { return "" }
        return text(.string(s))
    }

    static func text(_ v: DBusValue) -> String {
        switch v {
        // Quoted (JSON escapes) when it has a space or a control character: a server's text cannot forge lines.
        case .string(let s):
            return s.isEmpty || s.unicodeScalars.contains { $0 == " " || $0.properties.generalCategory == .control } ? quote(s) : s
        case .array(_, let items): return "[" + items.map(text).joined(separator: ", ") + "]"
        case .dict(_, _, let entries):
            return "{" + entries.map { "\($0.key.stringValue ?? $0.key.description)=\(text($0.value))" }.joined(separator: " ") + "}"
        case .variant(let inner): return text(inner)
        case .structure(let f): return "(" + f.map(text).joined(separator: ", ") + ")"
        default: return json(v)
        }
    }
}

@main
struct IcwsBridgectl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "icws-bridgectl",
        abstract: "Control and watch icws-bridged over D-Bus.",
        discussion: "Exit codes: 0 ok, 1 the daemon refused (the message says why), 69 daemon or bus unavailable, 75 no reply in time, 77 not allowed by the D-Bus policy.",
        version: "icws-bridgectl \(icwsBridgeVersion)",
        subcommands: [
            Status.self, Connect.self, Disconnect.self, Ready.self, NotReady.self, Monitor.self, Users.self, Reconnect.self, Logout.self,
            SipCredentials.self, Statuses.self, SetStatus.self, Calls.self, Answer.self, Hangup.self, Hold.self, Mute.self, Digits.self, Transfer.self, Voicemail.self,
            Dial.self, WrapUp.self, AccountCode.self, Consult.self, SpeakTo.self, CompleteTransfer.self, CancelConsult.self,
            ConferenceCommand.self, PauseRecording.self, ResumeRecording.self, Workgroups.self, Activate.self,
        ],
        defaultSubcommand: Status.self)
}

protocol BridgeCommand: AsyncParsableCommand {
    var options: BusOptions { get }
    func run(_ client: BridgeClient) async throws
}

extension BridgeCommand {
    func run() async throws {
        do {
            let client = try await BridgeClient.open(options)
            defer { client.connection.close() }
            try await run(client)
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("icws-bridgectl: \(e.message)\n".utf8))
            throw ExitCode(e.code)
        }
    }
}

/// A subcommand that is one method call without arguments from the user.
protocol SimpleCall: BridgeCommand {
    /// The call, through a typed proxy.
    func invoke(_ client: BridgeClient) async throws(BusError)
    /// What to print when it worked.
    var done: String { get }
}

extension SimpleCall {
    func run(_ client: BridgeClient) async throws {
        try await client.typed { c throws(BusError) in try await invoke(c) }
        print(done)
    }
}
