import CDBus

/// libdbus's own validation as an oracle: a message is built as the bus
/// would receive it, marshalled, and parsed back with full validation
/// (`dbus_message_demarshal`), as dbus-daemon checks every incoming message.
public enum WireCheck {
    /// The wire size of the signal, or why a bus would refuse it.
    public static func signal(path: String, interface: String, member: String, arguments: [DBusValue]) -> Result<Int, BusError> {
        bytes(path: path, interface: interface, member: member, arguments: arguments).flatMap(parsed).flatMap { b in
            guard b.count <= BusConnection.maxMessageBytes else {
                return .failure(.limitsExceeded("\(b.count) bytes, more than a bus takes (\(BusConnection.maxMessageBytes))"))
            }
            return .success(b.count)
        }
    }

    /// The signal's bytes as a bus receives them (serial 1), built from values.
    public static func bytes(path: String, interface: String, member: String, arguments: [DBusValue]) -> Result<[UInt8], BusError> {
        do { return .success(marshal(try BusConnection.makeSignal(path: path, interface: interface, member: member, arguments: arguments))) } catch {
            return .failure(error)
        }
    }

    /// The same, written straight into its bytes (`ArgumentWriter`), serial 1:
    /// a test compares the two. Bytes libdbus would not parse back are an error.
    public static func bytes(
        path: String, interface: String, member: String, signature: String, sizeBound: Int, write: (inout ArgumentWriter) -> Void
    ) -> Result<[UInt8], BusError> {
        var b: [UInt8]
        do {
            b = try BusConnection.signalBytes(path: path, interface: interface, member: member, signature: signature, sizeBound: sizeBound, write: write)
        } catch {
            return .failure(error)
        }
        b.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 8, as: UInt32.self) }
        return parsed(b)
    }

    /// The bytes, once libdbus parses them back with full validation.
    private static func parsed(_ b: [UInt8]) -> Result<[UInt8], BusError> {
        guard !b.isEmpty else { return .failure(.failed("cannot marshal")) }
        return b.withUnsafeBytes { BusConnection.parse(wire: $0) }.map { m in
            dbus_message_unref(m)
            return b
        }
    }

    /// Marshals (and releases) a message; empty when libdbus cannot.
    private static func marshal(_ m: OpaquePointer) -> [UInt8] {
        defer { dbus_message_unref(m) }
        dbus_message_set_serial(m, 1)
        var buffer: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        guard dbus_message_marshal(m, &buffer, &length) != 0, let buffer else { return [] }
        defer { dbus_free(buffer) }
        return UnsafeRawBufferPointer(start: buffer, count: Int(length)).map { $0 }
    }
}
