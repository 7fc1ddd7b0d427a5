import CDBus

#if canImport(Glibc)
    import Glibc
#endif

/// A D-Bus value with its type. Arrays and dicts carry their element
/// signature so that empty ones still have a type.
///
/// Only a variant holds its value in a box of its own: containers already keep
/// their elements in an array's buffer, and scalars and strings are stored in
/// place, so a message's tree costs one allocation per container, not one per value.
public enum DBusValue: Sendable, Equatable, CustomStringConvertible {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    case array(element: String, [DBusValue])
    case dict(key: String, value: String, [DictEntry])
    case structure([DBusValue])
    indirect case variant(DBusValue)

    public struct DictEntry: Sendable, Equatable {
        public var key: DBusValue
        public var value: DBusValue
        public init(_ key: DBusValue, _ value: DBusValue) {
            self.key = key
            self.value = value
        }
    }

    public var signature: String {
        switch self {
        // The shapes the bridge sends most, as literals: no string is built.
        case .dict(let k, let v, _) where k == "s" && v == "v": return "a{sv}"
        case .dict(let k, let v, _) where k == "s" && v == "s": return "a{ss}"
        case .array(let e, _) where e == "s": return "as"
        case .array(let e, _) where e == "a{sv}": return "aa{sv}"
        case .byte: return "y"
        case .bool: return "b"
        case .int16: return "n"
        case .uint16: return "q"
        case .int32: return "i"
        case .uint32: return "u"
        case .int64: return "x"
        case .uint64: return "t"
        case .double: return "d"
        case .string: return "s"
        case .objectPath: return "o"
        case .signature: return "g"
        case .array(let e, _): return "a" + e
        case .dict(let k, let v, _): return "a{" + k + v + "}"
        case .structure(let fields): return "(" + fields.map(\.signature).joined() + ")"
        case .variant: return "v"
        }
    }

    /// True when the signatures of `values`, one after the other, are exactly
    /// `sig` (a signal's arguments against its declaration), without building any string.
    public static func signatures(of values: [DBusValue], are sig: String) -> Bool {
        var s = sig
        return s.withUTF8 { bytes in
            var i = 0
            for v in values where !v.matchSignature(bytes, &i) { return false }
            return i == bytes.count
        }
    }

    /// True when `signature` is exactly `sig`, found without building any string
    /// (the check runs for every element of every array put on the bus).
    public func hasSignature(_ sig: String) -> Bool {
        var s = sig
        return s.withUTF8 { bytes in
            var i = 0
            return matchSignature(bytes, &i) && i == bytes.count
        }
    }

    private func matchSignature(_ s: UnsafeBufferPointer<UInt8>, _ i: inout Int) -> Bool {
        func take(_ c: UInt8) -> Bool {
            guard i < s.count, s[i] == c else { return false }
            i += 1
            return true
        }
        func take(_ t: String) -> Bool {
            for c in t.utf8 where !take(c) { return false }
            return true
        }
        switch self {
        case .byte: return take(UInt8(ascii: "y"))
        case .bool: return take(UInt8(ascii: "b"))
        case .int16: return take(UInt8(ascii: "n"))
        case .uint16: return take(UInt8(ascii: "q"))
        case .int32: return take(UInt8(ascii: "i"))
        case .uint32: return take(UInt8(ascii: "u"))
        case .int64: return take(UInt8(ascii: "x"))
        case .uint64: return take(UInt8(ascii: "t"))
        case .double: return take(UInt8(ascii: "d"))
        case .string: return take(UInt8(ascii: "s"))
        case .objectPath: return take(UInt8(ascii: "o"))
        case .signature: return take(UInt8(ascii: "g"))
        case .variant: return take(UInt8(ascii: "v"))
        case .array(let e, _): return take(UInt8(ascii: "a")) && take(e)
        case .dict(let k, let v, _): return take("a{") && take(k) && take(v) && take(UInt8(ascii: "}"))
        case .structure(let fields):
            guard take(UInt8(ascii: "(")) else { return false }
            for f in fields where !f.matchSignature(s, &i) { return false }
            return take(UInt8(ascii: ")"))
        }
    }

    /// True when `path` is an object path the bus accepts.
    public static func isValidObjectPath(_ path: String) -> Bool { path.withCString { dbus_validate_path($0, nil) } != 0 }

    // MARK: Builders for the common shapes

    /// `a{sv}` from ordered pairs.
    public static func vardict(_ pairs: [(String, DBusValue)]) -> DBusValue {
        .dict(key: "s", value: "v", pairs.map { DictEntry(.string($0.0), .variant($0.1)) })
    }

    /// `a{ss}` from ordered pairs.
    public static func stringDict(_ pairs: [(String, String)]) -> DBusValue {
        .dict(key: "s", value: "s", pairs.map { DictEntry(.string($0.0), .string($0.1)) })
    }

    public static func strings(_ items: [String]) -> DBusValue { .array(element: "s", items.map { .string($0) }) }
    public static func objectPaths(_ items: [String]) -> DBusValue { .array(element: "o", items.map { .objectPath($0) }) }

    /// `aa{sv}` from vardicts.
    public static func vardicts(_ items: [DBusValue]) -> DBusValue { .array(element: "a{sv}", items) }

    // MARK: Accessors

    public var stringValue: String? {
        switch self {
        case .string(let s), .objectPath(let s), .signature(let s): return s
        case .variant(let v): return v.stringValue
        default: return nil
        }
    }

    public var boolValue: Bool? {
        switch self {
        case .bool(let b): return b
        case .variant(let v): return v.boolValue
        default: return nil
        }
    }

    public var uint32Value: UInt32? {
        switch self {
        case .uint32(let u): return u
        case .variant(let v): return v.uint32Value
        default: return nil
        }
    }

    /// The contents of a variant (or the value itself).
    public var unwrapped: DBusValue {
        if case .variant(let v) = self { return v.unwrapped }
        return self
    }

    /// The entries of an `a{s…}` dict as (key, value) pairs.
    public var dictEntries: [(String, DBusValue)]? {
        guard case .dict(let k, _, let entries) = unwrapped, k == "s" else { return nil }
        return entries.compactMap { e in e.key.stringValue.map { ($0, e.value) } }
    }

    /// Looks up a key of an `a{s…}` dict, unwrapping a variant value.
    public subscript(key: String) -> DBusValue? {
        dictEntries?.first(where: { $0.0 == key })?.1.unwrapped
    }

    public var arrayElements: [DBusValue]? {
        if case .array(_, let items) = unwrapped { return items }
        return nil
    }

    public var description: String {
        switch self {
        case .byte(let v): return "byte \(v)"
        case .bool(let v): return "\(v)"
        case .int16(let v): return "\(v)"
        case .uint16(let v): return "\(v)"
        case .int32(let v): return "\(v)"
        case .uint32(let v): return "\(v)"
        case .int64(let v): return "\(v)"
        case .uint64(let v): return "\(v)"
        case .double(let v): return "\(v)"
        case .string(let v): return "\"\(v)\""
        case .objectPath(let v): return "objpath \(v)"
        case .signature(let v): return "sig \(v)"
        case .array(_, let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .dict(_, _, let entries):
            return "{" + entries.map { "\($0.key.description): \($0.value.description)" }.joined(separator: ", ") + "}"
        case .structure(let f): return "(" + f.map(\.description).joined(separator: ", ") + ")"
        case .variant(let v): return "<\(v.description)>"
        }
    }
}

enum TypeCode {
    static let byte = Int32(UInt8(ascii: "y"))
    static let bool = Int32(UInt8(ascii: "b"))
    static let int16 = Int32(UInt8(ascii: "n"))
    static let uint16 = Int32(UInt8(ascii: "q"))
    static let int32 = Int32(UInt8(ascii: "i"))
    static let uint32 = Int32(UInt8(ascii: "u"))
    static let int64 = Int32(UInt8(ascii: "x"))
    static let uint64 = Int32(UInt8(ascii: "t"))
    static let double = Int32(UInt8(ascii: "d"))
    static let string = Int32(UInt8(ascii: "s"))
    static let objectPath = Int32(UInt8(ascii: "o"))
    static let signature = Int32(UInt8(ascii: "g"))
    static let unixFD = Int32(UInt8(ascii: "h"))
    static let array = Int32(UInt8(ascii: "a"))
    static let variant = Int32(UInt8(ascii: "v"))
    static let structure = Int32(UInt8(ascii: "r"))
    static let dictEntry = Int32(UInt8(ascii: "e"))
    static let invalid = Int32(0)
}

/// Why a value could not be put into a message.
public struct EncodingError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension DBusValue {
    /// D-Bus strings may not contain NUL; ICWS text could. NULs are dropped
    /// rather than letting libdbus abort on them.
    static func sanitized(_ s: String) -> String {
        hasNUL(s) ? String(s.unicodeScalars.filter { $0.value != 0 }.map(Character.init)) : s
    }

    /// True when `s` holds a NUL: its C string is then shorter than its bytes
    /// (strlen, not a Swift loop over the bytes).
    static func hasNUL(_ s: String) -> Bool {
        s.withCString { strlen($0) } != s.utf8.count
    }

    /// Checks the whole tree before libdbus sees it: libdbus aborts the
    /// process on a mismatched container, so nothing wrong may reach it.
    func validate() throws(EncodingError) {
        switch self {
        case .objectPath(let p):
            guard p.withCString({ dbus_validate_path($0, nil) }) != 0 else {
                throw EncodingError(description: "invalid object path \"\(p.prefix(80))\"")
            }
        case .signature(let s):
            guard s.withCString({ dbus_signature_validate($0, nil) }) != 0 else {
                throw EncodingError(description: "invalid signature \"\(s.prefix(80))\"")
            }
        case .array(let e, let items):
            guard e.withCString({ dbus_signature_validate_single($0, nil) }) != 0 else {
                throw EncodingError(description: "invalid array element signature \(e)")
            }
            for item in items {
                guard item.hasSignature(e) else {
                    throw EncodingError(description: "array of \(e) holds a \(item.signature)")
                }
                try item.validate()
            }
        case .dict(let k, let v, let entries):
            guard k.utf8.count == 1, let code = k.utf8.first, "ybnqiuxtdsog".utf8.contains(code),
                v.withCString({ dbus_signature_validate_single($0, nil) }) != 0
            else { throw EncodingError(description: "invalid dict signature {\(k)\(v)}") }
            for e in entries {
                guard e.key.hasSignature(k), e.value.hasSignature(v) else {
                    throw EncodingError(description: "dict {\(k)\(v)} holds {\(e.key.signature)\(e.value.signature)}")
                }
                try e.key.validate()
                try e.value.validate()
            }
        case .structure(let fields):
            guard !fields.isEmpty else { throw EncodingError(description: "empty struct") }
            for f in fields { try f.validate() }
        case .variant(let v):
            try v.validate()
        default: break
        }
    }

    /// Appends to a message iterator; call `validate()` first.
    func append(to iter: inout DBusMessageIter) -> Bool {
        func basic<T>(_ type: Int32, _ value: T) -> Bool { DBusValue.appendBasic(&iter, type, value) }
        func text(_ type: Int32, _ s: String) -> Bool { DBusValue.appendText(&iter, type, s) }
        func container(_ type: Int32, _ sig: String?, _ body: (inout DBusMessageIter) -> Bool) -> Bool {
            DBusValue.appendContainer(&iter, type, sig, body)
        }
        switch self {
        case .byte(let v): return basic(TypeCode.byte, v)
        case .bool(let v): return basic(TypeCode.bool, dbus_bool_t(v ? 1 : 0))
        case .int16(let v): return basic(TypeCode.int16, v)
        case .uint16(let v): return basic(TypeCode.uint16, v)
        case .int32(let v): return basic(TypeCode.int32, v)
        case .uint32(let v): return basic(TypeCode.uint32, v)
        case .int64(let v): return basic(TypeCode.int64, v)
        case .uint64(let v): return basic(TypeCode.uint64, v)
        case .double(let v): return basic(TypeCode.double, v)
        case .string(let s): return text(TypeCode.string, s)
        case .objectPath(let s): return text(TypeCode.objectPath, s)
        case .signature(let s): return text(TypeCode.signature, s)
        case .array(let e, let items):
            return container(TypeCode.array, e) { sub in items.allSatisfy { $0.append(to: &sub) } }
        case .dict(_, _, let entries):
            // "a{kv}" less its "a" (a literal for the common shapes, see `signature`).
            return container(TypeCode.array, String(signature.dropFirst())) { sub in
                entries.allSatisfy { entry in
                    var e = DBusMessageIter()
                    guard dbus_message_iter_open_container(&sub, TypeCode.dictEntry, nil, &e) != 0 else { return false }
                    guard entry.key.append(to: &e), entry.value.append(to: &e) else {
                        dbus_message_iter_abandon_container(&sub, &e)
                        return false
                    }
                    return dbus_message_iter_close_container(&sub, &e) != 0
                }
            }
        case .structure(let fields):
            return container(TypeCode.structure, nil) { sub in fields.allSatisfy { $0.append(to: &sub) } }
        case .variant(let inner):
            return container(TypeCode.variant, inner.signature) { sub in inner.append(to: &sub) }
        }
    }

    static func appendBasic<T>(_ iter: inout DBusMessageIter, _ type: Int32, _ value: T) -> Bool {
        var v = value
        return withUnsafePointer(to: &v) { dbus_message_iter_append_basic(&iter, type, $0) } != 0
    }

    /// A string, object path or signature (a NUL in it is dropped, see `sanitized`).
    static func appendText(_ iter: inout DBusMessageIter, _ type: Int32, _ s: String) -> Bool {
        sanitized(s).withCString { cs in
            var p: UnsafePointer<CChar>? = cs
            return withUnsafePointer(to: &p) { dbus_message_iter_append_basic(&iter, type, $0) } != 0
        }
    }

    /// Opens a container, lets `body` fill it, and closes it (abandons it when `body` fails).
    static func appendContainer(
        _ iter: inout DBusMessageIter, _ type: Int32, _ sig: String?, _ body: (inout DBusMessageIter) -> Bool
    ) -> Bool {
        var sub = DBusMessageIter()
        let opened: Bool
        if let sig {
            opened = sig.withCString { dbus_message_iter_open_container(&iter, type, $0, &sub) } != 0
        } else {
            opened = dbus_message_iter_open_container(&iter, type, nil, &sub) != 0
        }
        guard opened else { return false }
        guard body(&sub) else {
            dbus_message_iter_abandon_container(&iter, &sub)
            return false
        }
        return dbus_message_iter_close_container(&iter, &sub) != 0
    }

    /// Reads the value at the iterator (which must not be at the end).
    static func read(_ iter: inout DBusMessageIter) -> DBusValue? {
        let type = dbus_message_iter_get_arg_type(&iter)
        func basic<T>(_ zero: T) -> T {
            var v = zero
            withUnsafeMutablePointer(to: &v) { dbus_message_iter_get_basic(&iter, $0) }
            return v
        }
        func text() -> String {
            var p: UnsafePointer<CChar>?
            withUnsafeMutablePointer(to: &p) { dbus_message_iter_get_basic(&iter, $0) }
            return p.map { String(cString: $0) } ?? ""
        }
        switch type {
        case TypeCode.byte: return .byte(basic(UInt8(0)))
        case TypeCode.bool: return .bool(basic(dbus_bool_t(0)) != 0)
        case TypeCode.int16: return .int16(basic(Int16(0)))
        case TypeCode.uint16: return .uint16(basic(UInt16(0)))
        case TypeCode.int32: return .int32(basic(Int32(0)))
        case TypeCode.uint32: return .uint32(basic(UInt32(0)))
        case TypeCode.int64: return .int64(basic(Int64(0)))
        case TypeCode.uint64: return .uint64(basic(UInt64(0)))
        case TypeCode.double: return .double(basic(Double(0)))
        case TypeCode.string: return .string(text())
        case TypeCode.objectPath: return .objectPath(text())
        case TypeCode.signature: return .signature(text())
        case TypeCode.array:
            guard let cs = dbus_message_iter_get_signature(&iter) else { return nil }
            let sig = String(cString: cs)
            dbus_free(cs)
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            if dbus_message_iter_get_element_type(&iter) == TypeCode.dictEntry {
                // "a{kv}": the key is one character, the value is the rest.
                let inner = sig.dropFirst(2).dropLast()
                let k = String(inner.prefix(1))
                let v = String(inner.dropFirst())
                var entries: [DictEntry] = []
                while dbus_message_iter_get_arg_type(&sub) == TypeCode.dictEntry {
                    var e = DBusMessageIter()
                    dbus_message_iter_recurse(&sub, &e)
                    guard let key = read(&e) else { return nil }
                    dbus_message_iter_next(&e)
                    guard let value = read(&e) else { return nil }
                    entries.append(DictEntry(key, value))
                    dbus_message_iter_next(&sub)
                }
                return .dict(key: k, value: v, entries)
            }
            var items: [DBusValue] = []
            while dbus_message_iter_get_arg_type(&sub) != TypeCode.invalid {
                guard let item = read(&sub) else { return nil }
                items.append(item)
                dbus_message_iter_next(&sub)
            }
            return .array(element: String(sig.dropFirst()), items)
        case TypeCode.structure:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            var fields: [DBusValue] = []
            while dbus_message_iter_get_arg_type(&sub) != TypeCode.invalid {
                guard let f = read(&sub) else { return nil }
                fields.append(f)
                dbus_message_iter_next(&sub)
            }
            return .structure(fields)
        case TypeCode.variant:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            return read(&sub).map { .variant($0) }
        default:
            return nil  // unix fds and anything newer: refused by the caller
        }
    }

    /// Reads every argument of a message.
    static func readAll(_ message: OpaquePointer) -> [DBusValue]? {
        var iter = DBusMessageIter()
        guard dbus_message_iter_init(message, &iter) != 0 else { return [] }
        var values: [DBusValue] = []
        while dbus_message_iter_get_arg_type(&iter) != TypeCode.invalid {
            guard let v = read(&iter) else { return nil }
            values.append(v)
            dbus_message_iter_next(&iter)
        }
        return values
    }

    /// Appends arguments to a message after validating them.
    static func appendAll(_ values: [DBusValue], to message: OpaquePointer) throws(EncodingError) {
        for v in values { try v.validate() }
        var iter = DBusMessageIter()
        dbus_message_iter_init_append(message, &iter)
        for v in values where !v.append(to: &iter) {
            throw EncodingError(description: "out of memory appending \(v.signature)")
        }
    }
}

extension DBusValue {
    /// An upper bound of the bytes this value takes in a message body, with
    /// every alignment pad counted at its largest. Used to split signals and
    /// to refuse replies the bus would drop, before libdbus builds them.
    public var encodedSizeBound: Int {
        typealias B = SizeBound
        switch self {
        case .byte: return 1
        case .int16, .uint16: return 4
        case .bool, .int32, .uint32: return B.word
        case .int64, .uint64, .double: return 16
        case .string(let s), .objectPath(let s): return B.string(s)
        case .signature(let s): return 2 + s.utf8.count
        case .array(_, let items): return B.array(items.reduce(0) { $0 + $1.encodedSizeBound })
        case .dict(_, _, let entries): return B.array(entries.reduce(0) { $0 + B.entry($1.key.encodedSizeBound, $1.value.encodedSizeBound) })
        case .structure(let fields): return 8 + fields.reduce(0) { $0 + $1.encodedSizeBound }
        case .variant(let v): return B.variant(signatureBytes: v.signature.utf8.count, v.encodedSizeBound)
        }
    }

    /// The pieces of `encodedSizeBound`, for sizing a value without building
    /// it (`VardictSizeBound`): each pad counted at its largest.
    public enum SizeBound {
        /// A bool, int32 or uint32.
        public static let word = 8
        public static func string(_ s: String) -> Int { 8 + s.utf8.count + 1 }
        /// An array or dict whose elements (entries) bound `contents`.
        public static func array(_ contents: Int) -> Int { 16 + contents }
        public static func entry(_ key: Int, _ value: Int) -> Int { 8 + key + value }
        public static func variant(signatureBytes: Int, _ value: Int) -> Int { 2 + signatureBytes + 8 + value }
    }
}
