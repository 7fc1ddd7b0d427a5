import CDBus
import OwnThread
import FoundationEssentials
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The client side: method calls, match rules and the signals received.
extension BusConnection {
    /// Calls a method and waits for its reply.
    public func call(
        destination: String, path: String, interface: String, member: String, arguments: [DBusValue] = [],
        timeout: Duration = .seconds(25)
    ) async throws(BusError) -> [DBusValue] {
        guard destination.withCString({ dbus_validate_bus_name($0, nil) }) != 0 else { throw .invalidArgs("invalid destination \(destination)") }
        guard path.withCString({ dbus_validate_path($0, nil) }) != 0 else { throw .invalidArgs("invalid object path \(path)") }
        guard interface.withCString({ dbus_validate_interface($0, nil) }) != 0 else { throw .invalidArgs("invalid interface \(interface)") }
        guard member.withCString({ dbus_validate_member($0, nil) }) != 0 else { throw .invalidArgs("invalid member \(member)") }
        guard let m = dbus_message_new_method_call(destination, path, interface, member) else { throw .failed("out of memory") }
        do { try DBusValue.appendAll(arguments, to: m) } catch {
            dbus_message_unref(m)
            throw .invalidArgs(error.description)
        }
        let ref = MessageRef(pointer: m)
        let loop = self.loop
        let result: Result<[DBusValue], BusError> = await withCheckedContinuation { continuation in
            let accepted = submit { conn in
                var serial: UInt32 = 0
                let sent = dbus_connection_send(conn, ref.pointer, &serial) != 0
                dbus_message_unref(ref.pointer)
                guard sent else {
                    continuation.resume(returning: .failure(.failed("could not send")))
                    return
                }
                loop.pending[serial] = (continuation, .now + timeout)
            }
            if !accepted {
                dbus_message_unref(m)
                continuation.resume(returning: .failure(.disconnected("the bus connection is closed")))
            }
        }
        return try result.get()
    }

    /// Adds a match rule on the bus (for receiving signals).
    public func addMatch(_ rule: String) async throws(BusError) {
        _ = try await call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "AddMatch", arguments: [.string(rule)])
    }

    /// Every signal this connection receives from now on (add a match rule to get them).
    public func signals() -> AsyncStream<SignalMessage> {
        let (stream, continuation) = AsyncStream<SignalMessage>.makeStream(bufferingPolicy: .unbounded)
        let id = shared.withLock { s -> UInt64 in
            s.nextStreamId += 1
            return s.nextStreamId
        }
        signalStreams.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.signalStreams.withLock { $0.removeValue(forKey: id) }
        }
        if !isConnected { continuation.finish() }
        return stream
    }
}
