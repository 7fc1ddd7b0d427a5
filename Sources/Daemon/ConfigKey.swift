import ICWS

/// One key of `icws-bridge.conf`: its name, type, range, default, help, and
/// what a reload does with it. `ConfigKey.all` is the whole configuration:
/// the parser reads it, and the README's table and the man page are printed
/// from it (`icws-bridged --config-reference markdown|man`), so the three
/// cannot disagree.
public struct ConfigKey: Sendable {
    public enum ValueType: Sendable {
        /// Non-empty text.
        case text
        /// A file path.
        case path
        /// `https://host[:port]` URLs, comma-separated.
        case urls
        /// `500ms`, `2s`, `1m`, `1h` or seconds, within the range.
        case duration(ClosedRange<Duration>)
        /// yes/no (also true/false, on/off, 1/0).
        case flag
        /// A comma-separated list; `atLeastOne` is the message when it may not be empty.
        case list(atLeastOne: String?)
        /// One of these words (any case).
        case choice([String])
    }

    /// What a reload (`systemctl reload`, SIGHUP) does with a changed value.
    public enum Reload: Sendable {
        /// Used from the next time it is needed.
        case applies
        /// The session is replaced by a new one with the new value.
        case newSession
        /// Sent with the next login.
        case nextLogin
        /// The subscriptions are made anew on the same session.
        case resubscribes
        /// Read at start only.
        case restart

        public var text: String {
            switch self {
            case .applies: return "applied"
            case .newSession: return "new session"
            case .nextLogin: return "next login"
            case .resubscribes: return "resubscribes"
            case .restart: return "restart"
            }
        }
    }

    /// A parsed value, of the key's type.
    public enum Value: Sendable {
        case text(String)
        case urls([ServerURL])
        case duration(Duration)
        case flag(Bool)
        case list([String])
    }

    /// Why a value was refused (the parser adds the file, line and key).
    public struct Refusal: Error {
        public var message: String
    }

    /// What the parser builds, key by key.
    public struct ParseState {
        public var configuration = DaemonConfiguration()
        /// The line being read.
        var line = 0
        var stationKind: StationSettings.Kind?
        var stationDraft = StationSettings(kind: .workstation)
        /// Where each `station-*` key was given.
        var stationLines: [String: Int] = [:]

        var station: StationSettings? {
            guard let kind = stationKind else { return nil }
            var s = stationDraft
            s.kind = kind
            return s
        }
    }

    public let name: String
    public let type: ValueType
    /// The default as the documentation shows it.
    public let defaultText: String
    public let help: String
    public let reload: Reload
    /// May be given more than once (the values add up).
    public let repeatable: Bool
    let set: @Sendable (inout ParseState, Value) throws(Refusal) -> Void

    init(
        _ name: String, _ type: ValueType, default defaultText: String, reload: Reload, repeatable: Bool = false,
        _ help: String, set: @escaping @Sendable (inout ParseState, Value) throws(Refusal) -> Void
    ) {
        self.name = name
        self.type = type
        self.defaultText = defaultText
        self.help = help
        self.reload = reload
        self.repeatable = repeatable
        self.set = set
    }

    public static let named: [String: ConfigKey] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// `StationSettings` field names → the keys that set them (for error messages).
    static let stationKeyNames = [
        "workstation": "station-workstation", "remoteNumber": "station-remote-number",
        "persistentConnection": "station-persistent-connection", "stationConnectionMode": "station-connection-mode",
        "supportedMediaTypes": "station-media-types", "kind": "station-type",
    ]
}

extension ConfigKey.ValueType {
    /// Reads a value of this type, or says why not.
    func parse(_ text: String) throws(ConfigKey.Refusal) -> ConfigKey.Value {
        func items() -> [String] { text.split(separator: ",").map { $0.trimmed }.filter { !$0.isEmpty } }
        switch self {
        case .text, .path:
            guard !text.isEmpty else { throw .init(message: "must not be empty") }
            return .text(text)
        case .urls:
            var urls: [ServerURL] = []
            for item in items() {
                guard let url = ServerURL(string: item) else {
                    throw .init(message: "invalid URL \"\(item.prefix(80))\" (expected https://host[:port]; no user or password in it)")
                }
                urls.append(url)
            }
            return .urls(urls)
        case .duration(let range):
            guard let d = DaemonConfiguration.parseDuration(text) else {
                throw .init(message: "invalid duration \"\(text.prefix(64))\" (use 500ms, 2s, 1m or a number of seconds)")
            }
            guard range.contains(d) else {
                throw .init(
                    message: "\"\(text.prefix(64))\" is out of range: \(DaemonConfiguration.formatDuration(range.lowerBound)) to \(DaemonConfiguration.formatDuration(range.upperBound))")
            }
            return .duration(d)
        case .flag:
            switch text.lowercased() {
            case "1", "yes", "true", "on": return .flag(true)
            case "0", "no", "false", "off": return .flag(false)
            default: throw .init(message: "expected yes or no, not \"\(text.prefix(64))\"")
            }
        case .list(let atLeastOne):
            let values = items()
            if let atLeastOne, values.isEmpty { throw .init(message: atLeastOne) }
            return .list(values)
        case .choice(let words):
            guard let word = words.first(where: { $0.lowercased() == text.lowercased() }) else {
                let spelled = words.count > 1 ? words.dropLast().joined(separator: ", ") + " or " + words[words.count - 1] : words.joined()
                throw .init(message: "expected \(spelled)")
            }
            return .text(word)
        }
    }

    /// How the documentation names the type.
    var documented: String {
        switch self {
        case .text: return "text"
        case .path: return "path"
        case .urls: return "URLs"
        case .duration(let r):
            return "duration, \(DaemonConfiguration.formatDuration(r.lowerBound)) to \(DaemonConfiguration.formatDuration(r.upperBound))"
        case .flag: return "yes/no"
        case .list: return "list"
        case .choice(let words): return words.joined(separator: " \\| ")
        }
    }
}

extension ConfigKey.Value {
    var text: String {
        if case .text(let s) = self { return s }
        return ""
    }
    var duration: Duration {
        if case .duration(let d) = self { return d }
        return .zero
    }
    var flag: Bool {
        if case .flag(let b) = self { return b }
        return false
    }
    var list: [String] {
        if case .list(let l) = self { return l }
        return []
    }
}

extension ConfigKey {
    /// Every key, in the order the documentation lists them.
    public static let all: [ConfigKey] = [
        ConfigKey(
            "server", .urls, default: "(required)", reload: .newSession, repeatable: true,
            "ICWS base URL, `https://host[:port]` (port 8019 by default; 8018 for http). Repeat the key or give a comma list for more servers, tried in order. No user or password in the URL."
        ) { s, v in if case .urls(let u) = v { s.configuration.servers += u } },
        ConfigKey("user", .text, default: "(required)", reload: .newSession, "the ICWS user id") { s, v in
            s.configuration.user = v.text
        },
        ConfigKey(
            "password-file", .path, default: "none", reload: .newSession,
            "a file holding the password; refused unless only its owner can read it (`chmod 600`). The password sources: README.md (Credentials), icws-bridge.conf(5) (PASSWORD)."
        ) { s, v in s.configuration.passwordFile = v.text },
        ConfigKey("application-name", .text, default: "`icws-bridge`", reload: .nextLogin, "`applicationName` shown to supervisors") { s, v in
            s.configuration.applicationName = v.text
        },
        ConfigKey("language", .text, default: "`en-us`", reload: .nextLogin, "`Accept-Language` of the session") { s, v in
            s.configuration.language = v.text
        },
        ConfigKey(
            "messaging", .choice(["auto", "sse", "poll"]), default: "`auto`", reload: .newSession,
            "`auto` (server-sent events when the server's `messaging` feature is 2 or more, else polling), `sse`, or `poll`"
        ) { s, v throws(Refusal) in
            guard let m = MessagingMode(rawValue: v.text) else { throw Refusal(message: "expected auto, sse or poll") }
            s.configuration.messaging = m
        },
        ConfigKey(
            "poll-interval", .duration(.milliseconds(100) ... .seconds(3600)), default: "`1s`", reload: .applies,
            "wait after each short poll returns (polling mode)"
        ) { s, v in s.configuration.pollInterval = v.duration },
        ConfigKey(
            "request-timeout", .duration(.seconds(1) ... .seconds(3600)), default: "`30s`", reload: .applies,
            "timeout of each ICWS request"
        ) { s, v in s.configuration.requestTimeout = v.duration },
        ConfigKey(
            "stall-timeout", .duration(.seconds(1) ... .seconds(86400)), default: "`90s`", reload: .applies,
            "a message stream with no byte (event or keep-alive) for this long is reopened"
        ) { s, v in s.configuration.stallTimeout = v.duration },
        ConfigKey(
            "ca-file", .path, default: "none", reload: .applies,
            "PEM file of extra CA certificates trusted beside the system store; read at start and on every reload (a file without a PEM certificate is a configuration error); new connections use it"
        ) { s, v in s.configuration.caFile = v.text },
        ConfigKey(
            "allow-insecure-http", .flag, default: "`no`", reload: .applies,
            "allow `http://` servers (port 8018); refused otherwise. Even with `yes`, a server never moves an `https` session to `http` (see Troubleshooting)"
        ) { s, v in s.configuration.allowInsecureHTTP = v.flag },
        ConfigKey(
            "backoff-initial", .duration(.milliseconds(100) ... .seconds(3600)), default: "`1s`", reload: .applies,
            "smallest ceiling of a reconnect wait. Each wait is a uniform draw between 0.1 s and its ceiling (full jitter); the ceiling is the larger of `backoff-initial` and half of how long the outage has lasted, so after an outage of T the daemon tries again within max(`backoff-initial`, T/2) of the server's return, and the attempts thin out as the outage goes on"
        ) { s, v in s.configuration.backoffInitial = v.duration },
        ConfigKey(
            "backoff-cap", .duration(.milliseconds(100) ... .seconds(86400)), default: "`60s`", reload: .applies,
            "largest ceiling of a reconnect wait (reached 2 minutes into an outage)"
        ) { s, v in s.configuration.backoffCap = v.duration },
        ConfigKey(
            "backoff-busy", .duration(.seconds(1) ... .seconds(3600)), default: "`10s`", reload: .applies,
            "smallest ceiling of the wait while the server says it is busy: a login answered with 503, or a session taken down with `shouldReconnect` (a restart or switchover, heard by every agent of a site at once). After a 503 the wait is a uniform draw up to the larger of `backoff-busy` and half the outage (at most `backoff-cap`), from 30 % of that (at least 1 s, at most 3 s), or the server's `Retry-After` plus up to half of it again; the first wait after a down is spread the same way, so a fleet of daemons logs in at a steady, low rate instead of all in the first second"
        ) { s, v in s.configuration.backoffBusy = v.duration },
        ConfigKey(
            "backoff-reset-after", .duration(.seconds(1) ... .seconds(86400)), default: "`30s`", reload: .applies,
            "a session (or event stream) that lived this long ends the outage: the next failure starts the backoff from `backoff-initial` again. A server that keeps dropping sessions sooner is one outage, and the waits keep growing"
        ) { s, v in s.configuration.backoffResetAfter = v.duration },
        ConfigKey(
            "alerting-attributes", .list(atLeastOne: nil), default: "`Eic_RemoteName,Eic_WorkgroupName`", reload: .resubscribes,
            "attribute names of the interaction-alerting subscription; empty for no alerting subscription"
        ) { s, v in s.configuration.alertingAttributes = v.list },
        ConfigKey("users-enabled", .flag, default: "`yes`", reload: .resubscribes, "make the users subscription") { s, v in
            s.configuration.usersEnabled = v.flag
        },
        ConfigKey("users-subscription-id", .text, default: "`icws-bridge-users`", reload: .resubscribes, "its subscription id") { s, v in
            s.configuration.usersSubscriptionId = v.text
        },
        ConfigKey(
            "users-ids", .list(atLeastOne: "must list at least one user id or *"), default: "`*`", reload: .resubscribes,
            "user ids to watch (`*` for all)"
        ) { s, v in s.configuration.usersIds = v.list },
        ConfigKey(
            "users-properties", .list(atLeastOne: "must list at least one property or *"), default: "`extension,statusText`",
            reload: .resubscribes, "user properties to watch (`*` for all; not together with `users-ids = *`)"
        ) { s, v in s.configuration.usersProperties = v.list },
        ConfigKey("users-rights-filter", .text, default: "`view`", reload: .resubscribes, "rights filter of the users subscription") { s, v in
            s.configuration.usersRightsFilter = v.text
        },
        ConfigKey(
            "interactions-enabled", .flag, default: "`yes`", reload: .resubscribes,
            "subscribe to the agent's own user queue and publish each interaction as an object (contract v1.1)"
        ) { s, v in s.configuration.interactionsEnabled = v.flag },
        ConfigKey(
            "interactions-attributes", .list(atLeastOne: nil), default: "none", reload: .resubscribes,
            "extra attribute names of that queue subscription (in each object's `Attributes`); the ones the properties need are always asked for"
        ) { s, v in s.configuration.interactionsAttributes = v.list },
        ConfigKey(
            "status-enabled", .flag, default: "`yes`", reload: .resubscribes,
            "subscribe to the agent's own status, the status catalogue and the user's status access (the `Status` interface)"
        ) { s, v in s.configuration.statusEnabled = v.flag },
        ConfigKey(
            "workgroups-enabled", .flag, default: "`yes`", reload: .restart,
            "read the user's workgroups after every new session (membership, wrap-up codes, activations), publish each as a `Workgroup` object and keep its `Activated` current with the activation subscription (contract v1.2)"
        ) { s, v in s.configuration.workgroupsEnabled = v.flag },
        ConfigKey(
            "statistics-enabled", .flag, default: "`yes`", reload: .resubscribes,
            "subscribe to the queue figures of the user's workgroups (each `Workgroup`'s `Statistics`); needs `workgroups-enabled`"
        ) { s, v in s.configuration.statisticsEnabled = v.flag },
        ConfigKey(
            "station-type", .choice(StationSettings.Kind.allCases.map(\.rawValue)), default: "none", reload: .restart,
            "a station to connect at start"
        ) { s, v in
            s.stationLines["station-type"] = s.line
            s.stationKind = StationSettings.Kind(rawValue: v.text)
        },
        ConfigKey("station-workstation", .text, default: "none", reload: .restart, "its workstation (workstation, remoteWorkstation)") { s, v in
            s.stationLines["station-workstation"] = s.line
            s.stationDraft.workstation = v.text
        },
        ConfigKey(
            "station-remote-number", .text, default: "none", reload: .restart,
            "its remote number (remoteNumber; optional for remoteWorkstation)"
        ) { s, v in
            s.stationLines["station-remote-number"] = s.line
            s.stationDraft.remoteNumber = v.text
        },
        ConfigKey("station-persistent-connection", .flag, default: "none", reload: .restart, "keep a persistent call leg (remoteNumber)") { s, v in
            s.stationLines["station-persistent-connection"] = s.line
            s.stationDraft.persistentConnection = v.flag
        },
        ConfigKey(
            "station-media-types", .list(atLeastOne: nil), default: "none", reload: .restart,
            "media types of the station: " + MediaType.names.dropFirst().map { "`\($0)`" }.joined(separator: ", ")
        ) { s, v throws(Refusal) in
            s.stationLines["station-media-types"] = s.line
            var media: [MediaType] = []
            for name in v.list {
                guard let m = MediaType(name: name), m != .unset else { throw Refusal(message: "unknown media type \"\(name.prefix(64))\"") }
                media.append(m)
            }
            s.stationDraft.supportedMediaTypes = media
        },
        ConfigKey("station-ready", .flag, default: "`no`", reload: .restart, "ready for interactions at start") { s, v in
            s.stationLines["station-ready"] = s.line
            s.stationDraft.readyForInteractions = v.flag
        },
        ConfigKey(
            "station-connection-mode", .choice(["0", "1", "2"]), default: "none", reload: .restart,
            "`stationConnectionMode`: 0 (" + StationConnectionMode.names[0] + "), 1 (" + StationConnectionMode.names[1] + ") or 2 ("
                + StationConnectionMode.names[2] + ")"
        ) { s, v in
            s.stationLines["station-connection-mode"] = s.line
            s.stationDraft.stationConnectionMode = UInt32(v.text).map(StationConnectionMode.init(rawValue:))
        },
        ConfigKey("logout-on-stop", .flag, default: "`yes`", reload: .applies, "log the session out when the daemon stops") { s, v in
            s.configuration.logoutOnStop = v.flag
        },
    ]

    /// The configuration table as Markdown (README.md's "Configure" section).
    public static func markdownTable() -> String {
        var lines = ["| key | type | default | reload | meaning |", "|---|---|---|---|---|"]
        for k in all {
            lines.append("| `\(k.name)` | \(k.type.documented) | \(k.defaultText) | \(k.reload.text) | \(k.help) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The configuration keys as an mdoc tag list's items (the KEYS section of
    /// icws-bridge.conf(5), docs/man/icws-bridge.conf.5.in).
    public static func manSection() -> String {
        /// One line of text for mdoc: `code` becomes Ql, nothing starts a request.
        func mdoc(_ s: String) -> [String] {
            var lines: [String] = []
            var text = ""
            var code = ""
            var inCode = false
            var opening = ""
            func flushText() {
                var t = Substring(text)
                // Punctuation right after a quote goes on its macro line, as delimiters.
                if let last = lines.last, last.hasPrefix(".Ql ") {
                    var delimiters: [String] = []
                    while let c = t.first, ".,;:)?!".contains(c) {
                        delimiters.append(String(c))
                        t = t.dropFirst()
                    }
                    if !delimiters.isEmpty { lines[lines.count - 1] += " " + delimiters.joined(separator: " ") }
                }
                while t.first == " " { t = t.dropFirst() }
                while t.last == " " { t = t.dropLast() }
                // An opening parenthesis right before a quote goes on its macro line too.
                if t.last == "(" {
                    t = t.dropLast()
                    opening = "( "
                    while t.last == " " { t = t.dropLast() }
                }
                if !t.isEmpty { lines.append(escape(String(t))) }
                text = ""
            }
            for ch in s {
                if ch == "`" {
                    if inCode {
                        lines.append(".Ql " + opening + quoteArg(code))
                        opening = ""
                        code = ""
                    } else {
                        flushText()
                    }
                    inCode.toggle()
                } else if inCode {
                    code.append(ch)
                } else {
                    text.append(ch)
                }
            }
            if inCode { text += "`" + code }
            flushText()
            return lines
        }
        func escape(_ t: String) -> String {
            var out = ""
            for ch in t {
                switch ch {
                case "\\": out += "\\e"
                default: out.append(ch)
                }
            }
            return out.hasPrefix(".") || out.hasPrefix("'") ? "\\&" + out : out
        }
        func quoteArg(_ t: String) -> String {
            "\"" + escape(t).map { $0 == "\"" ? "\\(dq" : String($0) }.joined() + "\""
        }
        var lines: [String] = []
        for k in all {
            lines.append(".It Cm \(k.name) Ns = Ns Ar \(quoteArg(k.type.documented.replacingBackslashPipes))")
            lines += mdoc(k.help.hasSuffix(".") ? k.help : k.help + ".")
            lines.append("Default:")
            lines += mdoc(k.defaultText + ".")
            lines.append("On reload: " + k.reload.text + ".")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate var replacingBackslashPipes: String {
        var out = ""
        var it = makeIterator()
        while let c = it.next() {
            if c == "\\" {
                if let n = it.next() { out.append(n) }
            } else {
                out.append(c)
            }
        }
        return out
    }
}
