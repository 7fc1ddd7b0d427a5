/// A server base URL: scheme, host, port and an optional path prefix.
/// ICWS resources hang below it as `{base}/icws/...`.
public struct ServerURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    public var path: String

    public init(scheme: String, host: String, port: Int, path: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
    }

    /// Parses `http(s)://host[:port][/path]`. Credentials in the URL are refused,
    /// so that a base URL can be shown anywhere.
    public init?(string: String) {
        guard let schemeEnd = string.firstRange(of: "://") else { return nil }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        var rest = string[schemeEnd.upperBound...]
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        if let q = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = String(path[..<q]) }
        guard !rest.isEmpty, !rest.contains("@") else { return nil }
        var host = String(rest)
        var port = scheme == "https" ? 8019 : 8018
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            } else if !after.isEmpty {
                return nil
            }
            host = String(host[...close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = String(host[..<colon])
        }
        guard Self.isValidHost(host), Self.isValidPath(path) else { return nil }
        self.init(scheme: scheme, host: host, port: port, path: path)
        while self.path.hasSuffix("/") { self.path.removeLast() }
    }

    /// A DNS name, an IPv4 address, or an IPv6 address in brackets: nothing
    /// that could add a port, user, path or header to a URL.
    public static func isValidHost(_ host: String) -> Bool {
        let bytes = Array(host.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        if bytes.first == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]") {
            let inner = bytes.dropFirst().dropLast()
            return inner.count >= 2 && inner.allSatisfy { isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }
        }
        return bytes.allSatisfy { b in
            isAlphanumeric(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_")
        } && bytes.first != UInt8(ascii: "-") && bytes.first != UInt8(ascii: ".")
    }

    /// A path prefix of unreserved characters, `%`-escapes and sub-delimiters
    /// (no space, quote, control character, `?` or `#`).
    static func isValidPath(_ path: String) -> Bool {
        path.utf8.count <= 1024
            && path.utf8.allSatisfy { b in isAlphanumeric(b) || Array("/-._~%!$&'()*+,;=:@".utf8).contains(b) }
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
    }

    public var description: String { "\(scheme)://\(host):\(port)\(path)" }

    /// The same scheme and port on another host (how `alternateHostList`
    /// entries are used); nil when `newHost` is not a plain host name or address.
    public func withHost(_ newHost: String) -> ServerURL? {
        guard Self.isValidHost(newHost) else { return nil }
        var copy = self
        copy.host = newHost
        return copy
    }

    func strippingConnectionPath() -> ServerURL {
        var copy = self
        while copy.path.hasSuffix("/") { copy.path.removeLast() }
        if copy.path.lowercased().hasSuffix("/icws/connection") {
            copy.path.removeLast("/icws/connection".count)
        }
        while copy.path.hasSuffix("/") { copy.path.removeLast() }
        return copy
    }

    /// Full URL for a resource path starting with `/icws/`.
    public func url(_ resource: String) -> String { description + resource }
}

/// The one rule for every location the server supplies (a `401` challenge's
/// `location`, an `alternateHostList` host): it may move the session to
/// another host or port, never from `https` to `http`, and never to `http`
/// unless `allow-insecure-http` is set. The password follows the session
/// wherever it goes.
public struct LocationPolicy: Sendable, Equatable {
    public var allowInsecureHTTP: Bool

    public init(allowInsecureHTTP: Bool) { self.allowInsecureHTTP = allowInsecureHTTP }

    /// Why `target` is refused when the session is at `current`, or nil when it is allowed.
    public func refusal(of target: ServerURL, from current: ServerURL) -> String? {
        guard target.scheme == "http" else { return nil }
        if current.scheme == "https" {
            return "refused the server's move of the https session to \(target) (plain http would carry the password in clear text)"
        }
        if !allowInsecureHTTP {
            return "refused the server's move to \(target): plain http needs allow-insecure-http = yes"
        }
        return nil
    }
}
