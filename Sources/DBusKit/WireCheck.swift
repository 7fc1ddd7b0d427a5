import CDBus

/// libdbus's own validation as an oracle: a message is built as the bus
/// would receive it, marshalled, and parsed back with full validation
/// (`dbus_message_demarshal`), as dbus-daemon checks every incoming message.
public enum WireCheck {
    /// The wire size of the signal, or why a bus would refuse it.
    public static func signal(path: String, interface: String, member: String, arguments: [DBusValue]) -> Result<Int, BusError> {
        let m: OpaquePointer
        do { m = try BusConnection.makeSignal(path: path, interface: interface, member: member, arguments: arguments) } catch {
            return .failure(error)
        }
        defer { dbus_message_unref(m) }
        dbus_message_set_serial(m, 1)
        var buffer: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        guard dbus_message_marshal(m, &buffer, &length) != 0, let buffer else { return .failure(.failed("cannot marshal")) }
        defer { dbus_free(buffer) }
        var err = CDBus.DBusError()
        dbus_error_init(&err)
        guard let parsed = dbus_message_demarshal(buffer, length, &err) else {
            return .failure(BusConnection.takeError(&err, fallback: "the message does not validate"))
        }
        dbus_message_unref(parsed)
        guard Int(length) <= BusConnection.maxMessageBytes else {
            return .failure(.limitsExceeded("\(length) bytes, more than a bus takes (\(BusConnection.maxMessageBytes))"))
        }
        return .success(Int(length))
    }
}
