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
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else { return nil }
        self.init(scheme: scheme, host: host, port: port, path: path)
        while self.path.hasSuffix("/") { self.path.removeLast() }
    }

    public var description: String { "\(scheme)://\(host):\(port)\(path)" }

    /// The same scheme and port on another host (how `alternateHostList` entries are used).
    public func withHost(_ newHost: String) -> ServerURL {
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
