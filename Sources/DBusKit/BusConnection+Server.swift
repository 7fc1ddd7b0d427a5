import CDBus
import OwnThread
import FoundationEssentials
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The server side: exported objects, names, and signals.
extension BusConnection {
    /// Exports an object; its methods and properties answer from now on.
    public func export(_ object: BusObject) {
        object.attach(self)
        objects.withLock { $0[object.path] = object }
    }

    /// Withdraws the object at `path`: calls to it answer UnknownObject from now on.
    public func unexport(_ path: String) {
        objects.withLock { _ = $0.removeValue(forKey: path) }
    }

    /// The names of the nodes exported below `path` (for its introspection).
    func exportedChildren(of path: String) -> [String] {
        Self.childNodes(of: path, in: Array(objects.withLock { $0.keys }))
    }

    /// Requests a well-known name without queueing; fails clearly when it is taken.
    public func requestName(_ name: String) async throws(BusError) {
        guard name.withCString({ dbus_validate_bus_name($0, nil) }) != 0 else { throw .invalidArgs("invalid bus name \(name)") }
        let reply = try await call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "RequestName", arguments: [.string(name), .uint32(UInt32(DBUS_NAME_FLAG_DO_NOT_QUEUE))])
        switch reply.first?.uint32Value {
        case UInt32(DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER), UInt32(DBUS_REQUEST_NAME_REPLY_ALREADY_OWNER): return
        case UInt32(DBUS_REQUEST_NAME_REPLY_EXISTS):
            throw BusError(name: "org.freedesktop.DBus.Error.AddressInUse", message: "the name \(name) is already owned by another process")
        default:
            throw .failed("could not own the name \(name)")
        }
    }

    /// A signal message with its arguments, checked before libdbus sees them:
    /// names, value types, and a size the bus takes. The caller owns the reference.
    static func makeSignal(path: String, interface: String, member: String, arguments: [DBusValue]) throws(BusError) -> OpaquePointer {
        try makeSignal(path: path, interface: interface, member: member, arguments: arguments, sizeBound: arguments.reduce(0) { $0 + $1.encodedSizeBound })
    }

    /// The same, with the arguments' `encodedSizeBound` already summed.
    static func makeSignal(path: String, interface: String, member: String, arguments: [DBusValue], sizeBound: Int) throws(BusError) -> OpaquePointer {
        let m = try makeSignal(path: path, interface: interface, member: member, sizeBound: sizeBound)
        do { try DBusValue.appendAll(arguments, to: m) } catch {
            dbus_message_unref(m)
            throw .invalidArgs(error.description)
        }
        return m
    }

    /// An empty signal message, once its names are valid and `sizeBound`
    /// (of its arguments) is within what a message may carry.
    static func makeSignal(path: String, interface: String, member: String, sizeBound: Int) throws(BusError) -> OpaquePointer {
        try checkSignal(path: path, interface: interface, member: member, sizeBound: sizeBound)
        guard let m = dbus_message_new_signal(path, interface, member) else { throw .failed("out of memory") }
        return m
    }

    /// Throws unless the names are valid and `sizeBound` (of the arguments) is
    /// within what a message may carry.
    static func checkSignal(path: String, interface: String, member: String, sizeBound: Int) throws(BusError) {
        // (A NUL would hide the rest of a name from the C checks.)
        guard !DBusValue.hasNUL(path), !DBusValue.hasNUL(interface), !DBusValue.hasNUL(member),
            path.withCString({ dbus_validate_path($0, nil) }) != 0,
            interface.withCString({ dbus_validate_interface($0, nil) }) != 0,
            member.withCString({ dbus_validate_member($0, nil) }) != 0
        else { throw .invalidArgs("invalid signal path, interface or member") }
        guard sizeBound <= maxMessageBytes - headerSlack else {
            throw .limitsExceeded("signal \(member) would be about \(sizeBound >> 20) MiB, more than a D-Bus message may carry")
        }
    }

    /// Sends a signal; signals keep the order in which they were emitted.
    ///
    /// The message is built on the calling thread and sent by the bus thread
    /// (woken only when its queue was empty). Sending from the calling thread
    /// would save that hand-off, but a write error there makes libdbus remove
    /// its watches from that thread while the bus thread may be using them.
    public func emitSignal(path: String, interface: String, member: String, arguments: [DBusValue]) throws(BusError) {
        let bound = arguments.reduce(0) { $0 + $1.encodedSizeBound }
        try send(signal: Self.makeSignal(path: path, interface: interface, member: member, arguments: arguments, sizeBound: bound), bytes: bound)
    }

    /// Hands a built signal (whose reference it takes) to the bus thread;
    /// `bytes` (its size, or a bound) counts towards `waitForRoom`'s backlog
    /// until it is in libdbus's queue, which counts from then on.
    func send(signal m: OpaquePointer, bytes: Int) throws(BusError) {
        let ref = MessageRef(pointer: m)
        let accepted = enqueue(
            .run { [self] conn in
                dbus_connection_send(conn, ref.pointer, nil)
                dbus_message_unref(ref.pointer)
                settled(bytes)
            }, counting: bytes)
        if !accepted {
            dbus_message_unref(m)
            throw .disconnected("the bus connection is closed")
        }
    }
}
