import BridgeContract
import DBusKit
import ICWSProtocol

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
                    if case .event(let e) = output { _ = try? ICWSMessage.decode(text: e.data) }
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

    /// Bytes as one ICWS message, all the way to the bus: decoded, mapped to
    /// its signals as the bridge maps it, and each signal built, marshalled and
    /// validated by libdbus as dbus-daemon would (`WireCheck`). A signal the
    /// bus would refuse, or one past the size a signal may have after
    /// splitting, is a crash. The properties the message changes (Alerting,
    /// the GetUsers reply) are checked the same way, unless the reply rule
    /// turns them into LimitsExceeded.
    public static func bus(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let json = try? JSONValue.parse(bytes: bytes) else { return }
        let items: [JSONValue]
        if case .array(let a) = json { items = a } else { items = [json] }
        var alerting = AlertingCache()
        var users = UsersCache()
        for item in items {
            guard let message = try? ICWSMessage.decode(item) else { continue }
            for signal in Emission.signals(for: message) {
                let declared = signature(signal.interface, signal.member)
                let actual = signal.arguments.map(\.signature).joined()
                precondition(declared == actual, "signal \(signal.member) is (\(actual)), the contract says (\(declared ?? "none"))")
                precondition(
                    signal.arguments.reduce(0) { $0 + $1.encodedSizeBound } <= 2 * BusLimits.signalSplitBytes + 2 * BusLimits.entryBytes,
                    "signal \(signal.member) was not split")
                switch WireCheck.signal(path: BridgeNames.objectPath, interface: signal.interface, member: signal.member, arguments: signal.arguments) {
                case .success: break
                case .failure(let e): preconditionFailure("the bus would refuse \(signal.member): \(e)")
                }
                // Marshalled straight into its wire bytes, it is libdbus's message byte for byte.
                if let direct = signal.direct {
                    let path = BridgeNames.objectPath
                    let built = WireCheck.bytes(path: path, interface: signal.interface, member: signal.member, arguments: signal.arguments)
                    let written = WireCheck.bytes(
                        path: path, interface: signal.interface, member: signal.member, signature: signal.spec.signature,
                        sizeBound: signal.sizeBound, write: direct)
                    precondition(
                        (try? built.get()) == (try? written.get()) && (try? built.get()) != nil, "signal \(signal.member) written directly differs")
                    precondition(signal.sizeBound == signal.arguments.reduce(0) { $0 + $1.encodedSizeBound }, "size bound of \(signal.member) differs")
                }
            }
            if case .interactionAlerting(let m) = message { alerting.apply(m) }
            if case .users(let m) = message { users.apply(m) }
        }
        for value in [Emission.alertingValue(alerting), Emission.usersValue(users)]
        where value.encodedSizeBound <= BusConnection.maxMessageBytes / 2 {
            switch WireCheck.signal(path: BridgeNames.objectPath, interface: BridgeNames.users, member: "Reply", arguments: [value]) {
            case .success: break
            case .failure(let e): preconditionFailure("the bus would refuse a property or reply: \(e)")
            }
        }
    }

    nonisolated(unsafe) static var signatures: [String: String] = {
        var out: [String: String] = [:]
        for iface in (try? BridgeNames.interfaces()) ?? [] {
            for s in iface.signals { out[iface.name + "." + s.name] = s.signature }
        }
        return out
    }()

    static func signature(_ interface: String, _ member: String) -> String? { signatures[interface + "." + member] }

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
