import CDBus

#if canImport(Glibc)
    import Glibc
#endif

/// The entries of an `a{sv}` map, written one by one: by `VardictBuilder`
/// into a `DBusValue`, by `VardictWriter` straight into a message, by
/// `VardictSizeBound` into the size bound the value would have. One mapping
/// written against this makes all three agree.
public protocol VardictSink {
    mutating func string(_ key: String, _ value: String)
    mutating func uint32(_ key: String, _ value: UInt32)
    mutating func bool(_ key: String, _ value: Bool)
    /// An `a{ss}` value.
    mutating func stringDict(_ key: String, _ pairs: [(String, String)])
}

/// Builds the `a{sv}` value (`DBusValue.vardict`) of the entries.
public struct VardictBuilder: VardictSink {
    private var pairs: [(String, DBusValue)] = []

    public init(capacity: Int = 0) { pairs.reserveCapacity(capacity) }

    public var value: DBusValue { .vardict(pairs) }

    public mutating func string(_ key: String, _ value: String) { pairs.append((key, .string(value))) }
    public mutating func uint32(_ key: String, _ value: UInt32) { pairs.append((key, .uint32(value))) }
    public mutating func bool(_ key: String, _ value: Bool) { pairs.append((key, .bool(value))) }
    public mutating func stringDict(_ key: String, _ pairs: [(String, String)]) { self.pairs.append((key, .stringDict(pairs))) }
}

/// The `encodedSizeBound` the built value would have, summed as the entries
/// come, with no value built.
public struct VardictSizeBound: VardictSink {
    typealias B = DBusValue.SizeBound
    private var entries = 0

    public init() {}

    public var bound: Int { B.array(entries) }

    private mutating func entry(_ key: String, signatureBytes: Int, value: Int) {
        entries += B.entry(B.string(key), B.variant(signatureBytes: signatureBytes, value))
    }

    public mutating func string(_ key: String, _ value: String) { entry(key, signatureBytes: 1, value: B.string(value)) }
    public mutating func uint32(_ key: String, _ value: UInt32) { entry(key, signatureBytes: 1, value: B.word) }
    public mutating func bool(_ key: String, _ value: Bool) { entry(key, signatureBytes: 1, value: B.word) }
    public mutating func stringDict(_ key: String, _ pairs: [(String, String)]) {
        entry(key, signatureBytes: 5, value: B.array(pairs.reduce(0) { $0 + B.entry(B.string($1.0), B.string($1.1)) }))
    }
}

/// A message's bytes as a bus receives them (little-endian, D-Bus
/// marshalling), appended in order. Offsets are from the message's start, so
/// alignment is the wire's. Only well-formed shapes are written: the writers
/// below fix them by type, and `BusConnection.signalBytes` checks the result.
struct WireBuffer {
    var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func align(_ n: Int) {
        let r = bytes.count & (n - 1)
        if r != 0 { bytes.append(contentsOf: repeatElement(0, count: n - r)) }
    }

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func uint32(_ v: UInt32) {
        align(4)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func set(_ v: UInt32, at offset: Int) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt32.self) }
    }

    /// A string or object path: length, UTF-8, NUL. A NUL inside is dropped,
    /// as `DBusValue.sanitized` does for values.
    mutating func text(_ s: String) {
        uint32(0)
        let lengthAt = bytes.count - 4
        var s = s
        s.withUTF8 { u in
            guard let base = u.baseAddress, !u.isEmpty else { return }
            if memchr(base, 0, u.count) == nil {
                bytes.append(contentsOf: u)
            } else {
                for b in u where b != 0 { bytes.append(b) }
            }
        }
        set(UInt32(truncatingIfNeeded: bytes.count - lengthAt - 4), at: lengthAt)
        bytes.append(0)
    }

    /// A signature: one length byte, the ASCII, NUL (at most 255 bytes: the
    /// ones written here are the writers' fixed ones and declared ones).
    mutating func signature(_ s: String) {
        let n = s.utf8.count
        bytes.append(UInt8(truncatingIfNeeded: n))
        bytes.append(contentsOf: s.utf8)
        bytes.append(0)
    }

    /// An array whose elements align to `elementAlignment`: its byte length,
    /// the padding, and what `body` writes.
    mutating func array(elementAlignment: Int, _ body: (inout WireBuffer) -> Void) {
        uint32(0)
        let lengthAt = bytes.count - 4
        align(elementAlignment)
        let start = bytes.count
        body(&self)
        set(UInt32(truncatingIfNeeded: bytes.count - start), at: lengthAt)
    }

    /// Lets a `W` write into this buffer (moved in and out, never copied).
    mutating func nested<W: NestedWriter>(_ body: (inout W) -> Void) {
        var w = W(wire: WireBuffer(capacity: 0))
        swap(&w.wire, &self)
        body(&w)
        swap(&w.wire, &self)
    }
}

/// A writer of what is inside one container.
protocol NestedWriter {
    init(wire: WireBuffer)
    var wire: WireBuffer { get set }
}

/// Writes a message's arguments straight into its wire bytes: for values made
/// for one message (a signal of a burst), with no `DBusValue` tree and no
/// libdbus message to build. The shapes are fixed by the types (an `a{sv}`
/// entry is a key and one value of a known type); what was written is kept as
/// `signature`, which the sender checks against the declared one.
public struct ArgumentWriter: NestedWriter {
    var wire: WireBuffer
    private(set) var signature = ""

    init(wire: WireBuffer) { self.wire = wire }

    public mutating func bool(_ value: Bool) {
        signature += "b"
        wire.uint32(value ? 1 : 0)
    }

    /// An `aa{sv}`: `body` writes its maps.
    public mutating func vardicts(_ body: (inout VardictArrayWriter) -> Void) {
        signature += "aa{sv}"
        wire.array(elementAlignment: 4) { $0.nested(body) }
    }
}

/// The maps of an `aa{sv}`.
public struct VardictArrayWriter: NestedWriter {
    var wire: WireBuffer

    init(wire: WireBuffer) { self.wire = wire }

    /// One `a{sv}`: `body` writes its entries.
    public mutating func vardict(_ body: (inout VardictWriter) -> Void) {
        wire.array(elementAlignment: 8) { $0.nested(body) }
    }
}

/// The entries of one `a{sv}`, written into the message.
public struct VardictWriter: VardictSink, NestedWriter {
    var wire: WireBuffer

    init(wire: WireBuffer) { self.wire = wire }

    private mutating func entry(_ key: String, _ signature: String, _ value: (inout WireBuffer) -> Void) {
        wire.align(8)
        wire.text(key)
        wire.signature(signature)
        value(&wire)
    }

    public mutating func string(_ key: String, _ value: String) { entry(key, "s") { $0.text(value) } }
    public mutating func uint32(_ key: String, _ value: UInt32) { entry(key, "u") { $0.uint32(value) } }
    public mutating func bool(_ key: String, _ value: Bool) { entry(key, "b") { $0.uint32(value ? 1 : 0) } }

    public mutating func stringDict(_ key: String, _ pairs: [(String, String)]) {
        entry(key, "a{ss}") { w in
            w.array(elementAlignment: 8) { a in
                for (k, v) in pairs {
                    a.align(8)
                    a.text(k)
                    a.text(v)
                }
            }
        }
    }
}

extension BusConnection {
    /// The bytes of a signal whose arguments `write` puts straight into them
    /// (see `ArgumentWriter`), as libdbus would marshal it, with serial 0 (the
    /// bus thread sets it). `sizeBound` is the arguments' `encodedSizeBound`,
    /// checked against what a message may carry before anything is written;
    /// the written signature must be `signature`, or there is no message.
    static func signalBytes(
        path: String, interface: String, member: String, signature: String, sizeBound: Int, write: (inout ArgumentWriter) -> Void
    ) throws(BusError) -> [UInt8] {
        try checkSignal(path: path, interface: interface, member: member, sizeBound: sizeBound)
        guard signature.utf8.count <= 255, signature.withCString({ dbus_signature_validate($0, nil) }) != 0 else {
            throw .invalidArgs("invalid signature of signal \(member)")
        }
        var w = WireBuffer(capacity: 64 + path.utf8.count + interface.utf8.count + member.utf8.count + signature.utf8.count + sizeBound)
        // Little-endian, a signal, no reply expected, protocol 1; body length and serial follow.
        w.bytes.append(contentsOf: [UInt8(ascii: "l"), 4, 1, 1])
        w.uint32(0)
        w.uint32(0)
        // The header fields, in libdbus's order: path, interface, member, signature.
        w.array(elementAlignment: 8) { f in
            func field(_ code: UInt8, _ type: String, _ value: (inout WireBuffer) -> Void) {
                f.align(8)
                f.byte(code)
                f.signature(type)
                value(&f)
            }
            field(1, "o") { $0.text(path) }
            field(2, "s") { $0.text(interface) }
            field(3, "s") { $0.text(member) }
            if !signature.isEmpty { field(8, "g") { $0.signature(signature) } }
        }
        w.align(8)
        let bodyStart = w.bytes.count
        var written = ""
        w.nested { (a: inout ArgumentWriter) in
            write(&a)
            written = a.signature
        }
        guard written == signature else { throw .invalidArgs("signal \(member) is (\(signature)), not (\(written))") }
        // The bound was checked against the limit; a body past it (a wrong
        // bound) is not sent, whatever its size.
        guard w.bytes.count - bodyStart <= sizeBound else {
            throw .failed("signal \(member) came out larger than its size bound (\(w.bytes.count - bodyStart) > \(sizeBound) bytes)")
        }
        guard w.bytes.count <= maxMessageBytes else {
            throw .limitsExceeded("signal \(member) is \(w.bytes.count >> 20) MiB, more than a D-Bus message may carry")
        }
        w.set(UInt32(truncatingIfNeeded: w.bytes.count - bodyStart), at: 4)
        return w.bytes
    }

    /// Sends a signal whose arguments `write` puts straight into its bytes, in
    /// order with every other message (see `emitSignal(path:interface:member:arguments:)`).
    public func emitSignal(
        path: String, interface: String, member: String, signature: String, sizeBound: Int, write: (inout ArgumentWriter) -> Void
    ) throws(BusError) {
        try send(wire: Self.signalBytes(path: path, interface: interface, member: member, signature: signature, sizeBound: sizeBound, write: write))
    }
}

extension BusObject {
    /// Emits a signal declared in the XML with arguments written straight into
    /// the message; `sizeBound` is their `encodedSizeBound`.
    public func emit(_ interface: String, _ member: String, sizeBound: Int, _ write: (inout ArgumentWriter) -> Void) throws(BusError) {
        guard let s = self.interface(interface)?.signal(member) else { throw .unknownMethod("no signal \(interface).\(member)") }
        guard let c = connection.withLock({ $0 }) else { throw .disconnected("object not exported") }
        try c.emitSignal(path: path, interface: interface, member: member, signature: s.signature, sizeBound: sizeBound, write: write)
    }
}
