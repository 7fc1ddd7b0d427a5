import FoundationEssentials
import Glibc
import ICWS

/// A configuration problem, naming the file, line and key.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var key: String?
    public var message: String

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let key { s += ": \(key)" }
        return s + ": " + message
    }
}

/// Everything `icws-bridge.conf` can say, with the defaults documented in README.md.
public struct DaemonConfiguration: Sendable, Equatable {
    public var servers: [ServerURL] = []
    public var user = ""
    public var passwordFile: String?
    public var applicationName = "icws-bridge"
    public var language = "en-us"
    public var messaging = MessagingMode.auto
    public var pollInterval: Duration = .seconds(1)
    public var requestTimeout: Duration = .seconds(30)
    public var stallTimeout: Duration = .seconds(90)
    public var caFile: String?
    /// The certificates of `caFile`, read with the file.
    public var trustRoots: TrustRoots?
    public var allowInsecureHTTP = false
    public var backoffInitial: Duration = .seconds(1)
    public var backoffBusy: Duration = .seconds(10)
    public var backoffCap: Duration = .seconds(60)
    public var backoffResetAfter: Duration = .seconds(30)
    public var alertingAttributes = ["Eic_RemoteName", "Eic_WorkgroupName"]
    public var usersEnabled = true
    public var usersSubscriptionId = "icws-bridge-users"
    public var usersIds = ["*"]
    public var usersProperties = ["extension", "statusText"]
    public var usersRightsFilter = "view"
    public var interactionsEnabled = true
    public var interactionsAttributes: [String] = []
    public var statusEnabled = true
    public var workgroupsEnabled = true
    public var statisticsEnabled = true
    public var station: StationSettings?
    public var logoutOnStop = true

    public init() {}

    /// The largest configuration, password or CA file read.
    public static let maxFileBytes = 1 << 20

    /// Every key, in the order README.md documents them.
    public static var keys: [String] { ConfigKey.all.map(\.name) }

    public static func load(path: String) throws(ConfigError) -> DaemonConfiguration {
        let data: [UInt8]
        do { data = try BoundedFile.read(path: path, limit: maxFileBytes) } catch {
            throw ConfigError(file: path, line: nil, key: nil, message: "the configuration file \(error)")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigError(file: path, line: nil, key: nil, message: "the configuration file is not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// Parses `key = value` lines; `#` or `;` starts a comment line; values may
    /// be "quoted". What each key accepts is its `ConfigKey` in `ConfigKey.all`.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> DaemonConfiguration {
        var state = ConfigKey.ParseState()
        var seen: Set<String> = []
        // "\r\n" is one Character in Swift: lines end at any of LF, CRLF, CR.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        for (index, rawLine) in lines.enumerated() {
            let lineNo = index + 1
            let line = rawLine.trimmed
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            func fail(_ key: String?, _ message: String) -> ConfigError {
                ConfigError(file: file, line: lineNo, key: key, message: message)
            }
            guard let eq = line.firstIndex(of: "=") else { throw fail(nil, "expected key = value") }
            let name = line[..<eq].trimmed.lowercased()
            var value = line[line.index(after: eq)...].trimmed
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            guard let key = ConfigKey.named[name] else { throw fail(String(name.prefix(64)), "unknown key (see README.md for the keys)") }
            // Values end up in HTTP headers, URLs and log lines: no control characters.
            if let bad = value.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
                throw fail(name, "contains the control character U+\(String(bad.value, radix: 16, uppercase: true))")
            }
            if !key.repeatable, !seen.insert(name).inserted { throw fail(name, "given twice") }
            do throws(ConfigKey.Refusal) {
                state.line = lineNo
                try key.set(&state, try key.type.parse(value))
            } catch {
                throw fail(name, error.message)
            }
        }
        var c = state.configuration
        // Cross-key checks.
        func fail(_ key: String?, _ message: String, line: Int? = nil) -> ConfigError {
            ConfigError(file: file, line: line, key: key, message: message)
        }
        if c.servers.isEmpty { throw fail("server", "is required") }
        if c.user.isEmpty { throw fail("user", "is required") }
        if !c.allowInsecureHTTP, let http = c.servers.first(where: { $0.scheme == "http" }) {
            throw fail("server", "\(http) is plain http; use https or set allow-insecure-http = yes")
        }
        if c.usersIds.contains("*") && c.usersProperties.contains("*") {
            throw fail("users-properties", "\"*\" cannot be used in both users-ids and users-properties")
        }
        if c.backoffCap < c.backoffInitial { throw fail("backoff-cap", "must not be smaller than backoff-initial") }
        if let caFile = c.caFile {
            let pem: [UInt8]
            do { pem = try BoundedFile.read(path: caFile, limit: maxFileBytes) } catch { throw fail("ca-file", "\(caFile) \(error)") }
            do { c.trustRoots = try TrustRoots.load(pem: pem, name: caFile) } catch { throw fail("ca-file", error.description) }
        }
        c.station = try station(state, file: file)
        return c
    }

    /// The start-up station from the `station-*` keys, checked as a whole.
    static func station(_ state: ConfigKey.ParseState, file: String) throws(ConfigError) -> StationSettings? {
        guard let s = state.station else {
            if let (key, line) = state.stationLines.min(by: { $0.value < $1.value }) {
                throw ConfigError(file: file, line: line, key: key, message: "needs station-type")
            }
            return nil
        }
        do { try s.validate() } catch {
            let key = ConfigKey.stationKeyNames[error.key] ?? "station-" + error.key
            throw ConfigError(file: file, line: state.stationLines[key], key: key, message: error.reason)
        }
        return s
    }

    /// `500ms`, `2s`, `1.5s`, `1m`, `1h`, or a plain number of seconds; nil for
    /// anything else, and for values of 100 years or more (which no key
    /// accepts, and whose milliseconds might not fit in an Int64).
    public static func parseDuration(_ text: String) -> Duration? {
        let t = text.trimmed.lowercased()
        var number = Substring(t)
        var factor = 1.0
        for (suffix, f) in [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)] where t.hasSuffix(suffix) {
            number = t.dropLast(suffix.count)
            factor = f
            break
        }
        guard let n = Double(number), n.isFinite, n >= 0 else { return nil }
        let ms = n * factor * 1000
        guard ms < 100 * 365 * 86_400_000 else { return nil }
        return .milliseconds(Int64(ms.rounded()))
    }

    /// `500ms`, `2s`, `1m`, `1h` as the configuration spells them.
    public static func formatDuration(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    /// The supervisor's settings (the password comes separately).
    public func supervisorConfiguration(password: Secret) -> SupervisorConfiguration {
        var s = SupervisorConfiguration(servers: servers, userId: user, password: password)
        s.messaging = messaging
        s.pollInterval = pollInterval
        s.stallTimeout = stallTimeout
        s.backoff = BackoffPolicy(initial: backoffInitial, cap: backoffCap, busyInitial: backoffBusy)
        s.stableAfter = backoffResetAfter
        s.subscriptions = SubscriptionSettings(
            alertingAttributeNames: alertingAttributes,
            users: usersEnabled
                ? UsersSubscription(subscriptionId: usersSubscriptionId, configurationIds: usersIds, properties: usersProperties, rightsFilter: usersRightsFilter)
                : nil,
            interactionAttributes: interactionsEnabled ? interactionsAttributes : nil, status: statusEnabled,
            workgroups: workgroupsEnabled, statistics: workgroupsEnabled && statisticsEnabled)
        s.initialStation = station
        s.logoutOnStop = logoutOnStop
        s.locationPolicy = LocationPolicy(allowInsecureHTTP: allowInsecureHTTP)
        return s
    }

    public var clientConfiguration: ICWSClientConfiguration {
        ICWSClientConfiguration(trustRoots: trustRoots, requestTimeout: requestTimeout, language: language, applicationName: applicationName)
    }
}

/// Where the password comes from, in order: the systemd credential
/// `icws-password`, the `password-file` (owner-only), or `ICWS_PASSWORD`.
public enum PasswordSource {
    /// The largest password file or credential read.
    public static let maxPasswordBytes = 64 * 1024

    public static func load(configuration c: DaemonConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ConfigError) -> (Secret, String)
    {
        func clean(_ s: String) -> String {
            var t = s.unicodeScalars
            while let last = t.last, last == "\n" || last == "\r" { t.removeLast() }
            return String(t)
        }
        // A password is one line of text: no NUL or other control character
        // (it goes into a JSON body; a stray byte would only fail the login).
        func password(_ bytes: [UInt8], file: String, key: String?) throws(ConfigError) -> Secret {
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw ConfigError(file: file, line: nil, key: key, message: "is not UTF-8 text")
            }
            let p = clean(text)
            guard !p.isEmpty else { throw ConfigError(file: file, line: nil, key: key, message: "is empty") }
            guard !p.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw ConfigError(file: file, line: nil, key: key, message: "holds a control character (a password is one line of text)")
            }
            return Secret(p)
        }
        if let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty {
            let path = dir + "/icws-password"
            var st = stat()
            if stat(path, &st) == 0 {
                let bytes: [UInt8]
                do { bytes = try BoundedFile.read(path: path, limit: maxPasswordBytes) } catch {
                    throw ConfigError(file: "credential icws-password", line: nil, key: nil, message: error.description)
                }
                return (try password(bytes, file: "credential icws-password", key: nil), "systemd credential icws-password")
            }
        }
        if let path = c.passwordFile {
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw ConfigError(file: path, line: nil, key: "password-file", message: "does not exist or cannot be read")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw ConfigError(file: path, line: nil, key: "password-file", message: "is not a regular file")
            }
            guard st.st_mode & 0o077 == 0 else {
                throw ConfigError(file: path, line: nil, key: "password-file", message: "has mode \(octal(st.st_mode & 0o7777)); it must be readable by its owner only (chmod 600)")
            }
            let bytes: [UInt8]
            do { bytes = try BoundedFile.read(path: path, limit: maxPasswordBytes) } catch {
                throw ConfigError(file: path, line: nil, key: "password-file", message: error.description)
            }
            return (try password(bytes, file: path, key: "password-file"), "password file")
        }
        if let p = environment["ICWS_PASSWORD"], !p.isEmpty {
            return (try password(Array(p.utf8), file: "ICWS_PASSWORD", key: nil), "ICWS_PASSWORD")
        }
        throw ConfigError(
            file: "password", line: nil, key: nil,
            message: "no password: use LoadCredential=icws-password:..., password-file = PATH, or ICWS_PASSWORD")
    }
}
