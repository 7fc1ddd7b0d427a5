/// The ICWS `401` challenge: `WWW-Authenticate: ICWS realm="ICWS" location="/ICWS/connection"`.
public struct AuthChallenge: Sendable, Equatable {
    public var realm: String?
    /// Where to log in again, relative or absolute, as the server sent it.
    public var location: String?

    public init(realm: String? = nil, location: String? = nil) {
        self.realm = realm
        self.location = location
    }

    /// Parses one `WWW-Authenticate` header value (RFC 7235 syntax); returns the
    /// `ICWS` challenge in it, or nil when there is none.
    public static func parse(header: String) -> AuthChallenge? {
        var scanner = ChallengeScanner(Array(header.utf8))
        while let scheme = scanner.token() {
            let params = scanner.params()
            if scheme.lowercased() == "icws" {
                return AuthChallenge(realm: params["realm"], location: params["location"])
            }
            if !scanner.skipComma() { break }
        }
        return nil
    }

    /// The base URL (scheme, host, port and any path prefix, without `/icws/connection`)
    /// where a new login should go, resolved against the base URL in use. A
    /// location that is not a usable URL (bad host, characters a URL cannot
    /// hold, another scheme) means the current base. Whether the result may
    /// be used at all is `LocationPolicy`'s to say.
    public func loginBase(relativeTo current: ServerURL) -> ServerURL {
        guard let location, !location.isEmpty else { return current }
        if location.contains("://") {
            return ServerURL(string: location)?.strippingConnectionPath() ?? current
        }
        var path = location
        if let q = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = String(path[..<q]) }
        guard path.hasPrefix("/"), !path.hasPrefix("//"), ServerURL.isValidPath(path) else { return current }
        var base = current
        base.path = path
        return base.strippingConnectionPath()
    }
}

private struct ChallengeScanner {
    let bytes: [UInt8]
    var i = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(c)
        }
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
    }

    mutating func token() -> String? {
        skipSpace()
        let start = i
        while i < bytes.count, Self.isTokenChar(bytes[i]) { i += 1 }
        return i > start ? String(decoding: bytes[start..<i], as: UTF8.self) : nil
    }

    mutating func skipComma() -> Bool {
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: ",") else { return false }
        i += 1
        return true
    }

    /// `name=value` pairs separated by commas or spaces; stops at the next scheme.
    mutating func params() -> [String: String] {
        var result: [String: String] = [:]
        while true {
            let save = i
            _ = skipComma()
            guard let name = token() else {
                i = save
                return result
            }
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else {
                // A bare token: the start of the next challenge.
                i = save
                return result
            }
            i += 1
            skipSpace()
            var value = ""
            if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
                i += 1
                var raw: [UInt8] = []
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\"), i + 1 < bytes.count { i += 1 }
                    raw.append(bytes[i])
                    i += 1
                }
                if i < bytes.count { i += 1 }
                value = String(decoding: raw, as: UTF8.self)
            } else {
                // Lenient: an unquoted value runs to the next space or comma ("/" included).
                let start = i
                while i < bytes.count, bytes[i] != 0x20, bytes[i] != 0x09, bytes[i] != UInt8(ascii: ",") { i += 1 }
                value = String(decoding: bytes[start..<i], as: UTF8.self)
            }
            result[name.lowercased()] = value
        }
    }
}
