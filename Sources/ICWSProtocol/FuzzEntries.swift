/// The entry points the libFuzzer targets (Tests/Fuzz) and their regression
/// tests share: each takes arbitrary bytes and must never crash or hang.
public enum FuzzEntries {
    /// Bytes as a server-sent event stream, split into chunks at arbitrary
    /// points (the first byte picks the chunk size); every event decoded as an ICWS message.
    public static func sse(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let first = bytes.first else { return }
        let chunk = Int(first % 17) + 1
        var parser = SSEParser(maxEventBytes: 1 << 20)
        var i = 1
        while i < bytes.count {
            let end = min(bytes.count, i + chunk)
            do {
                try parser.feed(UnsafeBufferPointer(rebasing: bytes[i..<end])) { output in
                    if case .event(let e) = output { _ = try? ICWSMessage.decode(text: Array(e.data.utf8)) }
                }
            } catch {
                return
            }
            i = end
        }
    }

    /// Bytes as one ICWS message (JSON), and as a poll response (an array of them).
    public static func message(_ bytes: UnsafeBufferPointer<UInt8>) {
        if let json = try? JSONValue.parse(bytes: bytes) {
            _ = try? ICWSMessage.decode(json)
            if case .array(let items) = json { for item in items { _ = try? ICWSMessage.decode(item) } }
            // What we parse we can write back and parse again to the same value.
            let again = try? JSONValue.parse(json.serialized())
            precondition(again == json || json.containsNonFiniteOrNegativeZero, "JSON round trip changed the value")
        }
        _ = ICWSError.fromResponse(status: 400, body: Array(bytes), wwwAuthenticate: [])
    }

    /// Bytes as a `WWW-Authenticate` header, resolved against a base URL.
    public static func challenge(_ bytes: UnsafeBufferPointer<UInt8>) {
        let header = String(decoding: bytes, as: UTF8.self)
        let base = ServerURL(scheme: "https", host: "cic1.example.net", port: 8019)
        if let c = AuthChallenge.parse(header: header) { _ = c.loginBase(relativeTo: base) }
        _ = ServerURL(string: header)
    }
}

extension JSONValue {
    /// -0.0 and huge exponents do not survive a text round trip bit for bit.
    var containsNonFiniteOrNegativeZero: Bool {
        switch self {
        case .double(let d): return !d.isFinite || (d == 0 && d.sign == .minus) || d.magnitude > 1e300 || d.magnitude < 1e-300
        case .array(let a): return a.contains { $0.containsNonFiniteOrNegativeZero }
        case .object(let o): return o.contains { $0.1.containsNonFiniteOrNegativeZero }
        default: return false
        }
    }
}
