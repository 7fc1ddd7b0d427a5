import ICWS
import Logging

/// The log filter every logger of the daemon passes through, the
/// dependencies' included (AsyncHTTPClient logs whole response heads and the
/// first bytes of bodies at trace). It removes, from the message and from every
/// metadata value:
/// - every value `SecretRegistry` knows (password, CSRF tokens, cookie values,
///   SIP passwords), as text and as hex;
/// - the value after a sensitive name (`ININ-ICWS-CSRF-Token`, `Cookie`,
///   `Set-Cookie`, `Authorization`, `password`, `sipPassword`, `csrfToken`),
///   whether it is known or not;
/// - hex dumps of message bodies (`[7b 22 …](120 bytes)`), which may hold any of these.
public struct RedactingLogHandler: LogHandler {
    public var wrapped: any LogHandler
    let registry: SecretRegistry

    public init(wrapping handler: any LogHandler, registry: SecretRegistry = .shared) {
        wrapped = handler
        self.registry = registry
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    public func log(event: LogEvent) {
        let redactor = Redactor(secrets: registry.all)
        var event = event
        event.message = Logger.Message(stringLiteral: redactor.redact(event.message.description))
        event.metadata = event.metadata.map { redactor.redact($0) }
        wrapped.log(event: event)
    }
}

/// The text rules of `RedactingLogHandler`.
public struct Redactor: Sendable {
    static let mark = "<redacted>"
    /// Names whose value is a secret, compared case-insensitively.
    static let sensitiveNames = ["ininicwscsrftoken", "csrftoken", "setcookie", "cookie", "authorization", "password", "sippassword"]

    let secrets: [String]

    public init(secrets: [String]) {
        var all: [String] = []
        for s in secrets {
            all.append(s)
            let bytes = Array(s.utf8)
            all.append(Self.hex(bytes, separator: " "))
            all.append(Self.hex(bytes, separator: ""))
        }
        self.secrets = all.filter { !$0.isEmpty }
    }

    static func hex(_ bytes: [UInt8], separator: String) -> String {
        let digits = Array("0123456789abcdef")
        return bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 15)]]) }.joined(separator: separator)
    }

    public func redact(_ metadata: Logger.Metadata) -> Logger.Metadata {
        metadata.mapValues(redact)
    }

    public func redact(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let s): return .string(redact(s))
        case .stringConvertible(let c): return .string(redact(c.description))
        case .array(let items): return .array(items.map(redact))
        case .dictionary(let d): return .dictionary(d.mapValues(redact))
        }
    }

    /// The longest text kept of one message or metadata value (after redaction).
    static let maxLineBytes = 16 * 1024

    public func redact(_ text: String) -> String {
        var out = Self.redactHexDumps(text)
        for s in secrets where out.contains(s) { out = out.replacing(s, with: Self.mark) }
        out = Self.redactNamedValues(out)
        // Server text must not forge log lines on stderr, nor flood the journal.
        return Self.escapingControls(out, maxBytes: Self.maxLineBytes)
    }

    /// Control characters as `\n`, `\r`, `\u{1b}`; cut past `maxBytes`.
    static func escapingControls(_ text: String, maxBytes: Int) -> String {
        guard text.utf8.count > maxBytes || text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\t" })
        else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if out.utf8.count >= maxBytes {
                out += "… (cut)"
                break
            }
            switch scalar {
            case "\t": out.unicodeScalars.append(scalar)
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case _ where scalar.properties.generalCategory == .control: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `[7b 22 61 …](120 bytes)` → `[120 bytes not logged]`.
    static func redactHexDumps(_ text: String) -> String {
        guard text.contains(" bytes)") else { return text }
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "[") {
            out += rest[..<open]
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "]"),
                after[..<close].allSatisfy({ $0.isHexDigit || $0 == " " || $0 == "." }),
                after[close...].hasPrefix("]("),
                let end = after[close...].firstIndex(of: ")"),
                after[after.index(close, offsetBy: 2)..<end].hasSuffix(" bytes")
            else {
                out += "["
                rest = after
                continue
            }
            out += "[" + after[after.index(close, offsetBy: 2)..<end] + " not logged]"
            rest = after[after.index(after: end)...]
        }
        return out + rest
    }

    /// Blanks the value that follows a sensitive name, in the two forms logs
    /// show them: a quoted name and a quoted value (`("Set-Cookie", "v")` as
    /// NIO prints headers, `"csrfToken":"v"` as JSON has it), and a header
    /// line (`Cookie: v` to the end of the line). Works on UTF-8 bytes (the
    /// names and separators are ASCII), so a long line costs its length only.
    static func redactNamedValues(_ text: String) -> String {
        let lower = text.lowercased()
        guard ["cookie", "csrf", "password", "authorization"].contains(where: { lower.contains($0) }) else { return text }
        let b = Array(text.utf8)
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        func isWordByte(_ c: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            guard isWordByte(b[i]), i == 0 || !isWordByte(b[i - 1]) else {
                out.append(b[i])
                i += 1
                continue
            }
            let start = i
            var word: [UInt8] = []
            while i < b.count, isWordByte(b[i]) {
                if b[i] != UInt8(ascii: "-") && b[i] != UInt8(ascii: "_") && word.count <= 32 { word.append(b[i] | 0x20) }
                i += 1
            }
            out.append(contentsOf: b[start..<i])
            let name = String(decoding: word, as: UTF8.self)
            guard sensitiveNames.contains(name) else { continue }
            if start > 0, b[start - 1] == quote, i < b.count, b[i] == quote {
                // "name" followed by , or : and a quoted value.
                var k = i + 1
                while k < b.count, b[k] == UInt8(ascii: " ") || b[k] == UInt8(ascii: ":") || b[k] == UInt8(ascii: ",") { k += 1 }
                guard k > i + 1, k < b.count, b[k] == quote else { continue }
                var end = k + 1
                while end < b.count, b[end] != quote { end += b[end] == backslash ? 2 : 1 }
                out.append(contentsOf: b[i...k])
                out.append(contentsOf: mark.utf8)
                i = min(end, b.count)
            } else if i + 1 < b.count, b[i] == UInt8(ascii: ":"), b[i + 1] == UInt8(ascii: " "),
                ["ininicwscsrftoken", "cookie", "setcookie", "authorization"].contains(name)
            {
                var end = i + 2
                while end < b.count, b[end] != UInt8(ascii: "\n") { end += 1 }
                out.append(contentsOf: ": ".utf8)
                out.append(contentsOf: mark.utf8)
                i = end
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
