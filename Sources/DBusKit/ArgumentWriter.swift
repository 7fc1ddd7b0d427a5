import CDBus

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

/// Writes a message's arguments straight into libdbus: for values made for
/// one message (a signal of a burst), with no `DBusValue` tree and no second
/// pass over it. The shapes are fixed by the types (an `a{sv}` entry is a key
/// and one value of a known type), so nothing libdbus would abort on can be
/// written; a failure (out of memory) is kept and reported at the end.
public struct ArgumentWriter {
    var iter = DBusMessageIter()
    var failed = false

    init(message: OpaquePointer) { dbus_message_iter_init_append(message, &iter) }

    public mutating func bool(_ value: Bool) {
        if !failed, !DBusValue.appendBasic(&iter, TypeCode.bool, dbus_bool_t(value ? 1 : 0)) { failed = true }
    }

    /// An `aa{sv}`: `body` writes its maps.
    public mutating func vardicts(_ body: (inout VardictArrayWriter) -> Void) {
        if !failed, !nestedArray("a{sv}", &iter, body) { failed = true }
    }
}

/// A writer of what is inside one container.
protocol NestedWriter {
    init(iter: DBusMessageIter)
    var iter: DBusMessageIter { get }
    var failed: Bool { get }
}

/// An array of `elementSignature` whose elements `body` writes with a `W`; false on failure.
private func nestedArray<W: NestedWriter>(_ elementSignature: String, _ iter: inout DBusMessageIter, _ body: (inout W) -> Void) -> Bool {
    DBusValue.appendContainer(&iter, TypeCode.array, elementSignature) { sub in
        var w = W(iter: sub)
        body(&w)
        sub = w.iter
        return !w.failed
    }
}

/// The maps of an `aa{sv}`.
public struct VardictArrayWriter: NestedWriter {
    var iter: DBusMessageIter
    var failed = false

    init(iter: DBusMessageIter) { self.iter = iter }

    /// One `a{sv}`: `body` writes its entries.
    public mutating func vardict(_ body: (inout VardictWriter) -> Void) {
        if !failed, !nestedArray("{sv}", &iter, body) { failed = true }
    }
}

/// The entries of one `a{sv}`, written into the message.
public struct VardictWriter: VardictSink, NestedWriter {
    var iter: DBusMessageIter
    var failed = false

    init(iter: DBusMessageIter) { self.iter = iter }

    private mutating func entry(_ key: String, _ signature: String, _ value: (inout DBusMessageIter) -> Bool) {
        guard !failed else { return }
        let ok = DBusValue.appendContainer(&iter, TypeCode.dictEntry, nil) { e in
            DBusValue.appendText(&e, TypeCode.string, key) && DBusValue.appendContainer(&e, TypeCode.variant, signature, value)
        }
        if !ok { failed = true }
    }

    public mutating func string(_ key: String, _ value: String) {
        entry(key, "s") { DBusValue.appendText(&$0, TypeCode.string, value) }
    }

    public mutating func uint32(_ key: String, _ value: UInt32) {
        entry(key, "u") { DBusValue.appendBasic(&$0, TypeCode.uint32, value) }
    }

    public mutating func bool(_ key: String, _ value: Bool) {
        entry(key, "b") { DBusValue.appendBasic(&$0, TypeCode.bool, dbus_bool_t(value ? 1 : 0)) }
    }

    public mutating func stringDict(_ key: String, _ pairs: [(String, String)]) {
        entry(key, "a{ss}") { v in
            DBusValue.appendContainer(&v, TypeCode.array, "{ss}") { a in
                pairs.allSatisfy { pair in
                    DBusValue.appendContainer(&a, TypeCode.dictEntry, nil) { e in
                        DBusValue.appendText(&e, TypeCode.string, pair.0) && DBusValue.appendText(&e, TypeCode.string, pair.1)
                    }
                }
            }
        }
    }
}

extension BusConnection {
    /// A signal whose arguments `write` puts straight into the message (see
    /// `ArgumentWriter`). `sizeBound` is their `encodedSizeBound`, checked
    /// against what a message may carry before anything is built; the written
    /// signature must be `signature`, or nothing is sent.
    static func makeSignal(
        path: String, interface: String, member: String, signature: String, sizeBound: Int, write: (inout ArgumentWriter) -> Void
    ) throws(BusError) -> OpaquePointer {
        let m = try makeSignal(path: path, interface: interface, member: member, sizeBound: sizeBound)
        var writer = ArgumentWriter(message: m)
        write(&writer)
        let written = dbus_message_get_signature(m).map { String(cString: $0) } ?? ""
        guard !writer.failed, written == signature else {
            dbus_message_unref(m)
            throw writer.failed ? .failed("out of memory") : .invalidArgs("signal \(member) is (\(signature)), not (\(written))")
        }
        return m
    }

    /// Sends a signal whose arguments `write` puts straight into the message,
    /// in order with every other signal (see `emitSignal(path:interface:member:arguments:)`).
    public func emitSignal(
        path: String, interface: String, member: String, signature: String, sizeBound: Int, write: (inout ArgumentWriter) -> Void
    ) throws(BusError) {
        try send(signal: Self.makeSignal(path: path, interface: interface, member: member, signature: signature, sizeBound: sizeBound, write: write))
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
