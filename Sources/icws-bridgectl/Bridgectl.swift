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
            Dial.self,
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

struct SipCredentials: BridgeCommand {
    static let configuration = CommandConfiguration(commandName: "sip-credentials", abstract: "Print the station's SIP user, password and address (agents and root only).")
    @OptionGroup var options: BusOptions
    func run(_ client: BridgeClient) async throws {
        let (user, password, address) = try await client.typed { c throws(BusError) in try await c.station.getSipCredentials(timeout: c.timeout) }
        print("user=\(user)\npassword=\(password)\naddress=\(address)")
    }
}

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

struct Monitor: BridgeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every signal of icws-bridged, one short line each, until interrupted.",
        discussion: """
            By default each change is one short line: sets are shown by their size \
            (Alerting=[3], added 120), a single alert or call by its caller. \
            --verbose prints whole values; --json prints one JSON object per signal.
            """)
    @OptionGroup var options: BusOptions
    @Flag(help: "One JSON object per line.") var json = false
    @Flag(name: .shortAndLong, help: "Whole values instead of the sizes of sets.") var verbose = false

    func run(_ client: BridgeClient) async throws {
        do {
            // path_namespace: the interaction objects' PropertiesChanged too.
            try await client.connection.addMatch("type='signal',sender='\(BridgeNames.busName)',path_namespace='\(BridgeNames.objectPath)'")
        } catch { throw CLIError.from(error, bus: client.busName) }
        let stream = client.connection.signals()
        if !json { line("monitoring \(BridgeNames.busName) on the \(client.busName) bus (Ctrl-C to stop)") }
        for await s in stream {
            let time = ISO8601DateFormatter.string(from: Date(), timeZone: .current, formatOptions: [.withFullTime, .withColonSeparatorInTime])
            if json {
                line("{\"time\":\(Render.quote(time)),\"interface\":\(Render.quote(s.interface)),\"signal\":\(Render.quote(s.member)),\"args\":[\(s.arguments.map(Render.json).joined(separator: ","))]}")
            } else {
                line("\(time) \(s.member) \(MonitorLine(verbose: verbose).describe(member: s.member, path: s.path, arguments: s.arguments))")
            }
        }
        throw CLIError(code: 69, message: "the bus connection ended")
    }

    /// One line straight to stdout (unbuffered, so a pipe sees it at once).
    func line(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
}

/// What `monitor` prints for one signal: short (sizes of sets) or verbose (whole values).
struct MonitorLine {
    var verbose: Bool

    /// A value: whole when verbose, else a container as its size.
    func value(_ v: DBusValue) -> String {
        if verbose { return Render.text(v) }
        switch v {
        case .variant(let inner): return value(inner)
        case .array(_, let items): return "[\(items.count)]"
        case .dict(_, _, let entries): return "{\(entries.count)}"
        case .string(let s) where s.count > 80: return Render.quote(String(s.prefix(77)) + "...")
        default: return Render.text(v)
        }
    }

    static func alert(_ d: DBusValue) -> String {
        let action: String
        switch AlertAction(rawValue: d["alertAction"]?.uint32Value ?? 0) {
        case .startAlerting: action = "START"
        case .stopAlerting: action = "STOP"
        case let other: action = other.name
        }
        return "\(action) \(Render.word(d["interactionId"]?.stringValue)) \(Render.word(d["interactionType"]?.stringValue)) from \(Render.quote(d["name"]?.stringValue ?? "")) \(Render.word(d["address"]?.stringValue)) queue=\(Render.word(d["queueName"]?.stringValue ?? "-"))"
    }

    /// "3 START, 1 STOP": how many of each action a set of alerts holds.
    static func alertCounts(_ items: [DBusValue]) -> String {
        var counts: [(String, Int)] = []
        for d in items {
            let name = alert(d).prefix { $0 != " " }
            if let i = counts.firstIndex(where: { $0.0 == name }) { counts[i].1 += 1 } else { counts.append((String(name), 1)) }
        }
        return counts.map { "\($0.1) \($0.0)" }.joined(separator: ", ")
    }

    func describe(member: String, path: String, arguments a: [DBusValue]) -> String {
        switch member {
        case "InteractionAlerting" where a.count == 2:
            let items = a[0].arrayElements ?? []
            let snapshot = a[1].boolValue == true ? "" : "[snapshot] "
            if items.isEmpty { return snapshot + "(none)" }
            if verbose || items.count == 1 { return snapshot + items.map(Self.alert).joined(separator: "; ") }
            return snapshot + Self.alertCounts(items)
        case "UsersChanged" where a.count == 4:
            let added = a[0].arrayElements ?? []
            let changed = a[1].arrayElements ?? []
            let removed = (a[2].arrayElements ?? []).compactMap(\.stringValue)
            var parts: [String] = []
            if a[3].boolValue != true { parts.append("[snapshot]") }
            if verbose {
                if !added.isEmpty { parts.append("added " + added.map { $0["id"]?.stringValue ?? "" }.joined(separator: ",")) }
                let lines = changed.map { u in
                    "\(u["id"]?.stringValue ?? "") " + (u.dictEntries ?? []).filter { $0.0 != "id" && $0.0 != "displayName" }.map { "\($0.0)=\(Render.text($0.1))" }.joined(separator: " ")
                }
                if !lines.isEmpty { parts.append("changed " + lines.joined(separator: "; ")) }
                if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ",")) }
            } else {
                if !added.isEmpty { parts.append("added \(added.count)") }
                if changed.count == 1, let u = changed.first {
                    // One user: which one and what changed (names only).
                    let keys = (u.dictEntries ?? []).map(\.0).filter { $0 != "id" && $0 != "displayName" }
                    parts.append("changed \(u["id"]?.stringValue ?? "") (\(keys.joined(separator: ",")))")
                } else if !changed.isEmpty {
                    parts.append("changed \(changed.count)")
                }
                if removed.count == 1 { parts.append("removed \(removed[0])") } else if !removed.isEmpty { parts.append("removed \(removed.count)") }
            }
            return parts.isEmpty ? "(nothing)" : parts.joined(separator: " ")
        case "StationConnectionStateChanged" where a.count == 3:
            return "previous=\(Render.text(a[0])) current=\(Render.text(a[1]))\(a[2].boolValue == true ? "" : " [snapshot]")"
        case "PropertiesChanged" where a.count >= 2 && a[0].stringValue == BridgeNames.interaction:
            let props = (a[1].dictEntries ?? []).filter { verbose || $0.0 != "Attributes" }
            return "call \(Call.id(fromPath: path)) " + props.map { "\($0.0)=\($0.0 == "Attributes" ? value($0.1) : Call.describe($0))" }.joined(separator: " ")
                + invalidated(a)
        case "PropertiesChanged" where a.count >= 2:
            let iface = (a[0].stringValue ?? "").split(separator: ".").last.map(String.init) ?? ""
            return "\(iface) " + (a[1].dictEntries ?? []).map { "\($0.0)=\(value($0.1))" }.joined(separator: " ") + invalidated(a)
        case "InterfacesAdded" where a.count == 2:
            let props = a[1][BridgeNames.interaction] ?? .vardict([])
            return "+ " + Call(path: a[0].stringValue ?? "", properties: props).line
        case "InterfacesRemoved" where a.count == 2:
            return "- call \(Call.id(fromPath: a[0].stringValue ?? ""))"
        default:
            return a.map(value).joined(separator: " ")
        }
    }

    /// PropertiesChanged's third argument: properties to read again (large sets).
    private func invalidated(_ a: [DBusValue]) -> String {
        guard a.count >= 3, let names = a[2].arrayElements?.compactMap(\.stringValue), !names.isEmpty else { return "" }
        return " " + names.map { "\($0)=(changed; read it with Get)" }.joined(separator: " ")
    }
}

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
    @Option(help: "Dial on behalf of this workgroup.") var workgroup: String?
    func run(_ client: BridgeClient) async throws {
        var opts: [(String, DBusValue)] = []
        if let workgroup { opts.append(("workgroup", .string(workgroup))) }
        let path = try await client.typed { c throws(BusError) in try await c.interactions.dial(target, .vardict(opts), timeout: c.timeout) }
        print(path)
    }
}

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

// MARK: Shell completion of live values

/// Values the shell completes by asking the running daemon: the ids of the
/// agent's interactions, the statuses the agent may select. Nothing (no error)
/// when the daemon or the bus is not there; the shell just offers nothing.
enum LiveValues {
    static let interactionIds = CompletionKind.custom { words, _, prefix in
        await ask(words) { client in
            try await client.interactionObjects().compactMap { $0.properties["Id"]?.stringValue }
        }.filter { $0.hasPrefix(prefix) }
    }

    static let statusIds = CompletionKind.custom { words, _, prefix in
        await ask(words) { client in
            let agent = try await client.properties(BridgeNames.status)
            return (agent["Selectable"]?.arrayElements ?? []).compactMap { $0["statusId"]?.stringValue }
        }.filter { $0.hasPrefix(prefix) }
    }

    /// The bus named on the command line being completed (`--bus X` or `--bus=X`), else the default.
    static func bus(in words: [String]) -> String {
        for (i, w) in words.enumerated() {
            if w == "--bus", i + 1 < words.count { return words[i + 1] }
            if w.hasPrefix("--bus=") { return String(w.dropFirst(6)) }
        }
        return ProcessInfo.processInfo.environment["ICWS_BRIDGE_BUS"] ?? "system"
    }

    static func ask(_ words: [String], _ body: (BridgeClient) async throws -> [String]) async -> [String] {
        var options = BusOptions()
        options.bus = bus(in: words)
        options.timeout = 2
        guard let client = try? await BridgeClient.open(options) else { return [] }
        defer { client.connection.close() }
        return ((try? await body(client)) ?? []).filter(isPlain)
    }

    /// The shells expand completion words (bash's `compgen -W` does parameter,
    /// command and pathname expansion on each): an id the server sent is offered
    /// only when it is letters, digits, spaces inside, and `-_.,@+:/()#`.
    static func isPlain(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 256 && id.first != " " && id.last != " "
            && id.unicodeScalars.allSatisfy { c in
                c.properties.isAlphabetic || c.properties.numericType == .decimal || c == " " || "-_.,@+:/()#".unicodeScalars.contains(c)
            }
    }
}
