import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

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
        case "PropertiesChanged" where a.count >= 2 && a[0].stringValue == BridgeNames.workgroup:
            // One short line: the workgroup and what changed (figures as `workgroups` shows them).
            let id = path.hasPrefix(BridgeNames.workgroupPrefix) ? String(path.dropFirst(BridgeNames.workgroupPrefix.count)) : path
            let props = (a[1].dictEntries ?? []).map { p -> String in
                if p.0 == "Statistics", !verbose { return WorkgroupLine.figures(p.1).isEmpty ? "(no figures)" : WorkgroupLine.figures(p.1) }
                return "\(p.0)=\(value(p.1))"
            }
            return "workgroup \(id) " + props.joined(separator: " ") + invalidated(a)
        case "PropertiesChanged" where a.count >= 2:
            let iface = (a[0].stringValue ?? "").split(separator: ".").last.map(String.init) ?? ""
            return "\(iface) " + (a[1].dictEntries ?? []).map { "\($0.0)=\(value($0.1))" }.joined(separator: " ") + invalidated(a)
        case "InterfacesAdded" where a.count == 2 && a[1][BridgeNames.workgroup] != nil:
            return "+ " + WorkgroupLine(properties: a[1][BridgeNames.workgroup] ?? .vardict([])).line
        case "InterfacesAdded" where a.count == 2:
            let props = a[1][BridgeNames.interaction] ?? .vardict([])
            return "+ " + Call(path: a[0].stringValue ?? "", properties: props).line
        case "InterfacesRemoved" where a.count == 2 && (a[0].stringValue ?? "").hasPrefix(BridgeNames.workgroupPrefix):
            return "- workgroup \(String((a[0].stringValue ?? "").dropFirst(BridgeNames.workgroupPrefix.count)))"
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
