import DBusKit
import ICWSProtocol

/// The names of the D-Bus contract v1.
public enum BridgeNames {
    public static let busName = "io.github.icwsbridge.Bridge1"
    public static let objectPath = "/io/github/icwsbridge/Bridge1"
    public static let session = "io.github.icwsbridge.Bridge1.Session"
    public static let station = "io.github.icwsbridge.Bridge1.Station"
    public static let interactions = "io.github.icwsbridge.Bridge1.Interactions"
    public static let users = "io.github.icwsbridge.Bridge1.Users"
    public static let interaction = "io.github.icwsbridge.Bridge1.Interaction"
    public static let status = "io.github.icwsbridge.Bridge1.Status"
    public static let workgroup = "io.github.icwsbridge.Bridge1.Workgroup"
    public static let objectManager = "org.freedesktop.DBus.ObjectManager"
    public static let errorPrefix = "io.github.icwsbridge.Bridge1.Error."
    /// Where the interaction objects live: `<interactionPrefix><escaped id>`.
    public static let interactionPrefix = objectPath + "/Interaction/"
    /// Where the workgroup objects live: `<workgroupPrefix><escaped id>`.
    public static let workgroupPrefix = objectPath + "/Workgroup/"

    /// The interfaces of the main object as the shipped XML describes them,
    /// with the standard ObjectManager.
    public static func interfaces() throws(BusError) -> [InterfaceDescription] {
        var all: [InterfaceDescription] = []
        for file in InterfaceXML.files where file.name != interaction && file.name != workgroup { all += try InterfaceDescription.parse(xml: file.xml) }
        return all + (try InterfaceDescription.parse(xml: objectManagerXML))
    }

    /// The interface of each workgroup object.
    public static func workgroupInterfaces() throws(BusError) -> [InterfaceDescription] {
        var all: [InterfaceDescription] = []
        for file in InterfaceXML.files where file.name == workgroup { all += try InterfaceDescription.parse(xml: file.xml) }
        return all
    }

    /// The interface of each interaction object.
    public static func interactionInterfaces() throws(BusError) -> [InterfaceDescription] {
        var all: [InterfaceDescription] = []
        for file in InterfaceXML.files where file.name == interaction { all += try InterfaceDescription.parse(xml: file.xml) }
        return all
    }

    static let objectManagerXML = """
        <node>
          <interface name="org.freedesktop.DBus.ObjectManager">
            <method name="GetManagedObjects">
              <arg name="objects" type="a{oa{sa{sv}}}" direction="out"/>
            </method>
            <signal name="InterfacesAdded">
              <arg name="object" type="o"/>
              <arg name="interfaces" type="a{sa{sv}}"/>
            </signal>
            <signal name="InterfacesRemoved">
              <arg name="object" type="o"/>
              <arg name="interfaces" type="as"/>
            </signal>
          </interface>
        </node>
        """

    /// The object path of an interaction: every byte of the id outside
    /// [A-Za-z0-9] becomes `_` and two lower-case hex digits; nil for an empty id.
    public static func interactionPath(_ id: String) -> String? { escapedPath(interactionPrefix, id) }

    /// The object path of a workgroup, escaped like an interaction's.
    public static func workgroupPath(_ id: String) -> String? { escapedPath(workgroupPrefix, id) }

    static func escapedPath(_ prefix: String, _ id: String) -> String? {
        guard !id.isEmpty else { return nil }
        var out = prefix
        let hex = Array("0123456789abcdef".utf8)
        for b in id.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out.unicodeScalars.append("_")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 15)]))
            }
        }
        return out
    }

    /// True for the path of one interaction object (one element below the prefix).
    public static func isInteractionPath(_ path: String) -> Bool {
        path.hasPrefix(interactionPrefix) && path.utf8.count > interactionPrefix.utf8.count
            && !path.dropFirst(interactionPrefix.count).contains("/")
    }

    /// The interaction objects of an ObjectManager `GetManagedObjects` reply
    /// (`a{oa{sa{sv}}}`): each path with its `…Bridge1.Interaction` properties.
    /// Whatever else the reply holds is skipped; a reply of another shape is none.
    public static func interactionObjects(inManagedObjects reply: DBusValue) -> [(path: String, properties: DBusValue)] {
        objects(inManagedObjects: reply, interaction, prefix: interactionPrefix)
    }

    /// The workgroup objects of a `GetManagedObjects` reply.
    public static func workgroupObjects(inManagedObjects reply: DBusValue) -> [(path: String, properties: DBusValue)] {
        objects(inManagedObjects: reply, workgroup, prefix: workgroupPrefix)
    }

    static func objects(inManagedObjects reply: DBusValue, _ interface: String, prefix: String) -> [(path: String, properties: DBusValue)] {
        guard case .dict(_, _, let entries) = reply else { return [] }
        return entries.compactMap { e in
            guard case .objectPath(let path) = e.key, path.hasPrefix(prefix), path.utf8.count > prefix.utf8.count,
                !path.dropFirst(prefix.count).contains("/"), let properties = e.value[interface]
            else { return nil }
            return (path, properties)
        }
    }
}

/// JSON → D-Bus as the contract says: string s, bool b, integer x, other
/// number d, array av, object a{sv}; a null member is left out and its key
/// listed in the map's `clearedProperties` (as). The one mapping rule for all
/// server data that becomes a D-Bus value, with the limits of `BusLimits`: a
/// value nested deeper than 16 containers, or one that does not fit in what
/// is left of its entry's budget, is published as its compact JSON text
/// (cut to the budget, ending in "…").
public enum JSONToDBus {
    struct OverBudget: Error {}

    /// One value as published (a user property, say); nil for JSON null.
    public static func value(_ json: JSONValue, budget: inout EntryBudget) -> DBusValue? {
        if case .null = json { return nil }
        if json.containerDepth > BusLimits.maxJSONDepth { return .string(budget.string(json.serialized())) }
        var trial = budget
        do throws(OverBudget) {
            let v = try convert(json, &trial)
            budget = trial
            return v
        } catch {
            return .string(budget.string(json.serialized()))
        }
    }

    /// A value with a budget of its own (tests, and values that stand alone).
    public static func value(_ json: JSONValue) -> DBusValue? {
        var budget = EntryBudget()
        return value(json, budget: &budget)
    }

    static func convert(_ json: JSONValue, _ budget: inout EntryBudget) throws(OverBudget) -> DBusValue? {
        func take(_ n: Int) throws(OverBudget) { guard budget.take(n) else { throw OverBudget() } }
        switch json {
        case .null: return nil
        case .bool(let b):
            try take(16)
            return .bool(b)
        case .int(let i):
            try take(16)
            return .int64(i)
        case .double(let d):
            try take(16)
            return .double(d)
        case .string(let s):
            try take(s.utf8.count + 9)
            return .string(s)
        case .array(let items):
            try take(16)
            var out: [DBusValue] = []
            out.reserveCapacity(items.count)
            for item in items {
                try take(12)
                if let v = try convert(item, &budget) { out.append(.variant(v)) }
            }
            return .array(element: "v", out)
        case .object(let members):
            try take(16)
            var pairs: [(String, DBusValue)] = []
            var cleared: [String] = []
            var clearedSet: Set<String> = []
            var seen: [String: Int] = [:]
            for (key, member) in members {
                try take(key.utf8.count + 24)
                if let v = try convert(member, &budget) {
                    if let i = seen[key] { pairs[i].1 = v } else {
                        seen[key] = pairs.count
                        pairs.append((key, v))
                    }
                } else if clearedSet.insert(key).inserted {
                    cleared.append(key)
                }
            }
            if !cleared.isEmpty { pairs.append(("clearedProperties", .strings(cleared))) }
            return .vardict(pairs)
        }
    }

    /// An `a{sv}` from JSON members (later duplicates win), with
    /// `clearedProperties`, each member converted under `budget`.
    public static func map(_ members: [(String, JSONValue)], prefix: [(String, DBusValue)] = [], budget: inout EntryBudget) -> DBusValue {
        var pairs = prefix
        var cleared: [String] = []
        var clearedSet: Set<String> = []
        var seen: [String: Int] = [:]
        for (i, p) in pairs.enumerated() { seen[p.0] = i }
        for (rawKey, json) in members {
            let key = budget.key(rawKey)
            if let v = value(json, budget: &budget) {
                if let i = seen[key] { pairs[i].1 = v } else {
                    seen[key] = pairs.count
                    pairs.append((key, v))
                }
            } else if clearedSet.insert(key).inserted {
                cleared.append(key)
            }
        }
        if !cleared.isEmpty { pairs.append(("clearedProperties", .strings(cleared))) }
        return .vardict(pairs)
    }

    public static func map(_ members: [(String, JSONValue)], prefix: [(String, DBusValue)] = []) -> DBusValue {
        var budget = EntryBudget()
        return map(members, prefix: prefix, budget: &budget)
    }
}

/// ICWS types → contract maps.
public enum ContractMaps {
    public static let stationKinds = StationSettings.Kind.allCases.map(\.rawValue)

    /// The station information map; `sipPassword` is never put in it.
    public static func stationInfo(_ s: StationInformation?) -> DBusValue {
        guard let s else { return .vardict([]) }
        var budget = EntryBudget()
        var p: [(String, DBusValue)] = []
        func text(_ key: String, _ v: String?) { if let v { p.append((key, .string(budget.string(v)))) } }
        text("id", s.id)
        text("extension", s.extension)
        if let v = s.canBeDialed { p.append(("canBeDialed", .bool(v))) }
        if let v = s.ringAlways { p.append(("ringAlways", .bool(v))) }
        text("sipAddress", s.sipAddress)
        text("sipUser", s.sipUser)
        text("remoteNumber", s.remoteNumber)
        text("managedIPPhone", s.managedIPPhone)
        text("emergencyResponderLocationID", s.emergencyResponderLocationID)
        if let v = s.stationSetting { p.append(("stationSetting", .uint32(v.rawValue))) }
        if let v = s.allowedMediaTypes {
            let fit = v.prefix(max(0, budget.remaining / 8))
            _ = budget.take(fit.count * 8)
            p.append(("allowedMediaTypes", .array(element: "u", fit.map { .uint32($0.rawValue) })))
        }
        return .vardict(p)
    }

    /// The requested settings in the keys of `Station.Connect`.
    public static func settings(_ s: StationSettings?) -> DBusValue {
        guard let s else { return .vardict([]) }
        var p: [(String, DBusValue)] = [("type", .string(s.kind.rawValue))]
        if let v = s.workstation { p.append(("workstation", .string(v))) }
        if let v = s.remoteNumber { p.append(("remoteNumber", .string(v))) }
        if let v = s.persistentConnection { p.append(("persistentConnection", .bool(v))) }
        if let v = s.supportedMediaTypes {
            p.append(("supportedMediaTypes", .strings(v.map(\.name))))
        }
        p.append(("readyForInteractions", .bool(s.readyForInteractions)))
        if let v = s.stationConnectionMode { p.append(("stationConnectionMode", .uint32(v.rawValue))) }
        return .vardict(p)
    }

    /// Reads `Station.Connect` settings; any problem is InvalidArgs naming the key.
    public static func parseConnect(_ value: DBusValue) throws(BusError) -> StationSettings {
        guard let entries = value.dictEntries else { throw .invalidArgs("settings must be a{sv}") }
        var seen = Set<String>()
        var kind: StationSettings.Kind?
        var s = StationSettings(kind: .stationless)
        func expect(_ key: String, _ v: DBusValue, _ sig: String) throws(BusError) -> DBusValue {
            let inner = v.unwrapped
            guard inner.signature == sig else {
                throw .invalidArgs("key \"\(key)\" must be of type \(sig), not \(inner.signature)")
            }
            return inner
        }
        for (key, raw) in entries {
            guard seen.insert(key).inserted else { throw .invalidArgs("key \"\(key)\" appears twice") }
            switch key {
            case "type":
                let t = try expect(key, raw, "s").stringValue ?? ""
                guard let k = StationSettings.Kind(rawValue: t) else {
                    throw .invalidArgs("key \"type\" must be one of \(stationKinds.joined(separator: ", ")), not \"\(t.prefix(64))\"")
                }
                kind = k
            case "workstation": s.workstation = try expect(key, raw, "s").stringValue
            case "remoteNumber": s.remoteNumber = try expect(key, raw, "s").stringValue
            case "persistentConnection": s.persistentConnection = try expect(key, raw, "b").boolValue
            case "readyForInteractions": s.readyForInteractions = try expect(key, raw, "b").boolValue ?? false
            case "stationConnectionMode": s.stationConnectionMode = try expect(key, raw, "u").uint32Value.map(StationConnectionMode.init(rawValue:))
            case "supportedMediaTypes":
                let names = (try expect(key, raw, "as").arrayElements ?? []).compactMap(\.stringValue)
                var media: [MediaType] = []
                for n in names {
                    guard let m = MediaType(name: n), m != .unset else {
                        throw .invalidArgs("key \"supportedMediaTypes\" has an unknown media type \"\(n.prefix(64))\"")
                    }
                    media.append(m)
                }
                s.supportedMediaTypes = media
            default:
                throw .invalidArgs("unknown key \"\(key.prefix(64))\"")
            }
        }
        guard let kind else { throw .invalidArgs("key \"type\" is required") }
        s.kind = kind
        do { try s.validate() } catch { throw .invalidArgs("key \"\(error.key)\" \(error.reason)") }
        return s
    }

    public static func alertDetail(_ d: InteractionAlertDetail) -> DBusValue {
        var b = VardictBuilder(capacity: 10)
        alertDetail(d, into: &b)
        return b.value
    }

    /// The map of one alerting interaction, into any sink: the value (Get,
    /// tests), the message itself (the signal), or its size bound (splitting).
    public static func alertDetail<Sink: VardictSink>(_ d: InteractionAlertDetail, into p: inout Sink) {
        var budget = EntryBudget()
        p.string("interactionId", budget.string(d.interactionId))
        p.string("interactionType", budget.string(d.interactionType))
        p.string("name", budget.string(d.name))
        p.string("address", budget.string(d.address))
        p.uint32("alertType", d.alertType.rawValue)
        p.uint32("alertAction", d.alertAction.rawValue)
        p.bool("autoAnswer", d.autoAnswer)
        if let q = d.queueType { p.uint32("queueType", q.rawValue) }
        if let q = d.queueName { p.string("queueName", budget.string(q)) }
        p.stringDict("attributes", d.attributes.map { (budget.string($0.0), budget.string($0.1)) })
    }

    /// `alertDetail(d).encodedSizeBound`, without building the value.
    public static func alertDetailSizeBound(_ d: InteractionAlertDetail) -> Int {
        var b = VardictSizeBound()
        alertDetail(d, into: &b)
        return b.bound
    }

    /// A user map: id, displayName and the properties as JSON → D-Bus, under one entry budget.
    public static func user(_ u: UserEntry) -> DBusValue {
        var budget = EntryBudget()
        var prefix: [(String, DBusValue)] = [("id", .string(budget.string(u.id)))]
        if let d = u.displayName { prefix.append(("displayName", .string(budget.string(d)))) }
        return JSONToDBus.map(u.properties.filter { $0.0 != "id" && $0.0 != "displayName" }, prefix: prefix, budget: &budget)
    }

    /// ICWS failures → the contract's error names. Every error the server
    /// gave (an HTTP status, or an `error` in a message) carries its
    /// `errorId` and `message` in the D-Bus error's text, after `context`
    /// when one is given; never a secret.
    public static func busError(_ e: ICWSError, context: String? = nil) -> BusError {
        func named(_ n: String, _ m: String) -> BusError {
            BusError(name: BridgeNames.errorPrefix + n, message: context.map { "\($0): \(m)" } ?? m)
        }
        let id = e.errorId ?? ""
        switch e.kind {
        case .notConnected: return named("NotConnected", "no ICWS session now")
        case .timeout: return named("Timeout", "the ICWS server did not answer in time")
        case .transport: return named("NotConnected", "the ICWS server cannot be reached: \(e.message)")
        case .invalidResponse: return named("ServerError", "invalid response from the ICWS server: \(e.message)")
        case .server(let status) where status == 401:
            return named("NotConnected", "the ICWS session is no longer valid (\(e.httpText)); reconnecting")
        case .server(let status) where status == 403: return named("Forbidden", e.httpText)
        case .server, .reported:
            if id.hasSuffix("unknownStation") { return named("UnknownStation", e.httpText) }
            if id.hasSuffix("noLicense") { return named("NoLicense", e.httpText) }
            if id == "error.request.timeout" { return named("Timeout", e.httpText) }
            return named("ServerError", e.httpText)
        }
    }
}

extension ContractMaps {
    /// `Eic_State` letters → the `State` property.

    /// The properties of an interaction object, from its attributes.
    /// What an interaction object shows besides its queue entry: the consult
    /// this daemon made on it, and whether its conference parent is on the queue.
    public struct InteractionContext: Sendable, Equatable {
        /// The `consultId` of the last `Consult` made on it, while that consult lasts.
        public var consultId: String?
        /// The entry named by `conferenceParentId` is on the queue.
        public var parentKnown: Bool

        public init(consultId: String? = nil, parentKnown: Bool = false) {
            self.consultId = consultId
            self.parentKnown = parentKnown
        }
    }

    /// `attributes: false` leaves out `Attributes` (the costly one) for a reader that asks for another property.
    public static func interactionProperties(
        _ e: InteractionEntry, _ context: InteractionContext = .init(), attributes: Bool = true
    ) -> [(PropertySpec, DBusValue)] {
        typealias P = Contract.Interaction
        var budget = EntryBudget()
        func text(_ name: String) -> String { budget.string(e[name] ?? "") }
        let code = e["Eic_State"] ?? ""
        let consult = e["Eic_ConsultCallId"].flatMap { $0.isEmpty ? nil : $0 } ?? context.consultId ?? ""
        let parent = context.parentKnown ? e.conferenceParentId.flatMap(BridgeNames.interactionPath) ?? "/" : "/"
        var out = [
            P.Values.id(budget.string(e.id)), P.Values.type(text("Eic_ObjectType")), P.Values.state(InteractionState(code: code).rawValue),
            P.Values.stateCode(budget.string(code)), P.Values.direction(CallDirection(code: e["Eic_CallDirection"]).rawValue), P.Values.remoteName(text("Eic_RemoteName")),
            P.Values.remoteAddress(text("Eic_RemoteAddress")), P.Values.muted(e["Eic_Muted"] == "1"),
            P.Values.capabilities(e["Eic_Capabilities"].flatMap { UInt32($0) } ?? 0), P.Values.conferenceId(text("Eic_ConferenceId")),
            P.Values.initiationTime(text("Eic_InitiationTime")),
            P.Values.workgroup(text("Eic_WorkgroupName")), P.Values.wrapUpCode(text("Eic_WrapUpCode")), P.Values.accountCode(text("Eic_AccountCode")),
            P.Values.consultId(budget.string(consult)), P.Values.consultSpeakTo(text("Eic_ConsultCallSpeakTo")),
            P.Values.conferenceParent(parent), P.Values.recordingResumesAt(text("Eic_RecordingsAutoResumeTime")),
        ]
        // Last: what is left of the entry's budget.
        if attributes { out.append(P.Values.attributes(e.attributes.map { ($0.0, budget.string($0.1)) })) }
        return out
    }
}

extension ContractMaps {
    /// The `Status` properties.
    public static func statusProperties(_ c: StatusCache) -> [(PropertySpec, DBusValue)] {
        typealias P = Contract.Status
        let cur = c.current
        let entry = cur.flatMap { c.status($0.statusId) }
        return [
            P.Values.statusId((cur?.statusId ?? "").singleLine(maxBytes: 1024)),
            P.Values.statusText((entry?.messageText ?? cur?.statusId ?? "").singleLine(maxBytes: 1024)),
            P.Values.notes((cur?.notes ?? "").singleLine(maxBytes: 4096)),
            P.Values.forwardNumber((cur?.forwardNumber ?? "").singleLine(maxBytes: 1024)),
            P.Values.changed(cur?.statusChanged.flatMap(unixSeconds) ?? 0),
            P.Values.loggedIn(cur?.loggedIn ?? false), P.Values.onPhone(cur?.onPhone ?? false),
            P.Values.isAcd(entry?.flag("isAcdStatus") ?? false), P.Values.isDoNotDisturb(entry?.flag("isDoNotDisturbStatus") ?? false),
            P.Values.isAfterCallWork(entry?.flag("isAfterCallWorkStatus") ?? false),
            P.Values.selectable(.vardicts(c.selectable.map(selectableEntry))),
        ]
    }

    static func selectableEntry(_ s: StatusMessage) -> DBusValue {
        var budget = EntryBudget()
        var p: [(String, DBusValue)] = [("statusId", .string(budget.string(s.statusId)))]
        if let t = s.messageText { p.append(("messageText", .string(budget.string(t)))) }
        if let g = s.groupTag { p.append(("groupTag", .string(budget.string(g)))) }
        for (name, value) in s.flags where name != "isSelectableStatus" { p.append((name, .bool(value))) }
        return .vardict(p)
    }

    /// `20240301T141502Z` (or the extended `2024-03-01T14:15:02Z`) as Unix seconds; nil for anything else.
    public static func unixSeconds(_ text: String) -> Int64? {
        let digits = Array(text.utf8.filter { $0 != UInt8(ascii: "-") && $0 != UInt8(ascii: ":") })
        guard digits.count >= 16, digits[8] == UInt8(ascii: "T") else { return nil }
        func number(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for b in digits[r] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) else { return nil }
                v = v * 10 + Int64(b - UInt8(ascii: "0"))
            }
            return v
        }
        guard let y = number(0..<4), let mo = number(4..<6), let d = number(6..<8), let h = number(9..<11), let mi = number(11..<13),
            let s = number(13..<15), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61
        else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + h * 3600 + mi * 60 + s
    }

    /// Unix seconds as the compact UTC form ICWS messages use (`20240301T141502Z`).
    public static func compactUTC(_ seconds: Int64) -> String {
        // Civil from days (Howard Hinnant's algorithm).
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let rest = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year = String(y)
        return String(repeating: "0", count: max(0, 4 - year.count)) + year + two(m) + two(d) + "T" + two(rest / 3600) + two(rest / 60 % 60) + two(rest % 60) + "Z"
    }

    /// The last segment id (`SID`) that `Eic_WrapupConnectionSegments` names,
    /// when one can be read (the value's syntax is not published: any
    /// `SID` key not part of a longer name, up to three separator characters,
    /// then digits).
    public static func lastSegmentId(_ segments: String) -> Int? {
        let b = Array(segments.utf8)
        var found: Int?
        func isAlnum(_ c: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
        }
        var i = 0
        while i + 3 <= b.count {
            defer { i += 1 }
            guard b[i] == UInt8(ascii: "S"), b[i + 1] == UInt8(ascii: "I"), b[i + 2] == UInt8(ascii: "D"), i == 0 || !isAlnum(b[i - 1]) else { continue }
            var j = i + 3
            var skipped = 0
            while j < b.count, !isAlnum(b[j]), skipped < 3 { j += 1; skipped += 1 }
            guard skipped > 0 else { continue }
            var v = 0
            var digits = 0
            while j < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[j]), digits < 9 {
                v = v * 10 + Int(b[j] - UInt8(ascii: "0"))
                j += 1
                digits += 1
            }
            if digits > 0 { found = v }
        }
        return found
    }
}
