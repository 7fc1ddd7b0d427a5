import CDBus
import OwnThread
import FoundationEssentials
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Incoming messages on the bus thread (inside dispatch): replies, signals, method calls and their answers.
extension BusConnection {
    func filter(_ message: OpaquePointer) -> DBusHandlerResult {
        switch dbus_message_get_type(message) {
        case DBUS_MESSAGE_TYPE_METHOD_CALL:
            return handleMethodCall(message)
        case DBUS_MESSAGE_TYPE_METHOD_RETURN, DBUS_MESSAGE_TYPE_ERROR:
            let serial = dbus_message_get_reply_serial(message)
            guard let (continuation, _) = loop.pending.removeValue(forKey: serial) else {
                return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
            }
            if dbus_message_get_type(message) == DBUS_MESSAGE_TYPE_ERROR {
                let name = dbus_message_get_error_name(message).map { String(cString: $0) } ?? "org.freedesktop.DBus.Error.Failed"
                let text = DBusValue.readAll(message)?.first?.stringValue ?? ""
                continuation.resume(returning: .failure(BusError(name: name, message: text)))
            } else if let values = DBusValue.readAll(message) {
                continuation.resume(returning: .success(values))
            } else {
                continuation.resume(returning: .failure(.failed("reply has a type this library cannot read")))
            }
            return DBUS_HANDLER_RESULT_HANDLED
        case DBUS_MESSAGE_TYPE_SIGNAL:
            let streams = signalStreams.withLock { $0 }
            guard !streams.isEmpty, let args = DBusValue.readAll(message) else { return DBUS_HANDLER_RESULT_NOT_YET_HANDLED }
            let signal = SignalMessage(
                sender: Self.string(dbus_message_get_sender(message)), path: Self.string(dbus_message_get_path(message)),
                interface: Self.string(dbus_message_get_interface(message)),
                member: Self.string(dbus_message_get_member(message)),
                signature: Self.string(dbus_message_get_signature(message)), arguments: args)
            for (_, c) in streams { c.yield(signal) }
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        default:
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }
    }

    static func string(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

    func handleMethodCall(_ message: OpaquePointer) -> DBusHandlerResult {
        let path = Self.string(dbus_message_get_path(message))
        let interface = Self.string(dbus_message_get_interface(message))
        let member = Self.string(dbus_message_get_member(message))
        let exported = objects.withLock { $0 }
        guard let object = exported[path] else {
            if interface == "org.freedesktop.DBus.Introspectable" || interface.isEmpty, member == "Introspect" {
                let children = Self.childNodes(of: path, in: Array(exported.keys))
                if !children.isEmpty || path == "/" {
                    let xml = BusObject.introspectionHeader + "<node>\n"
                        + children.map { "  <node name=\"\($0)\"/>\n" }.joined() + "</node>\n"
                    reply(to: MessageRef(pointer: dbus_message_ref(message)), .success([.string(xml)]))
                    return DBUS_HANDLER_RESULT_HANDLED
                }
            }
            reply(
                to: MessageRef(pointer: dbus_message_ref(message)),
                .failure(BusError(name: "org.freedesktop.DBus.Error.UnknownObject", message: "no object at \(path)")))
            return DBUS_HANDLER_RESULT_HANDLED
        }
        let ref = MessageRef(pointer: dbus_message_ref(message))
        let signature = Self.string(dbus_message_get_signature(message))
        // Only the header is looked at here: a call of the wrong signature is
        // refused before its arguments are read, and the arguments of a good one
        // are read by the handler's task, so no message holds the bus thread.
        if let expected = object.expectedSignature(interface: interface, member: member), expected != signature {
            reply(to: ref, .failure(.invalidArgs("\(interface.isEmpty ? "" : interface + ".")\(member) takes (\(expected)), not (\(signature.prefix(64)))")))
            return DBUS_HANDLER_RESULT_HANDLED
        }
        guard callsInFlight.add(1, ordering: .relaxed).newValue <= Self.maxCallsInFlight else {
            callsInFlight.subtract(1, ordering: .relaxed)
            reply(to: ref, .failure(.limitsExceeded("too many calls in flight; try again later")))
            return DBUS_HANDLER_RESULT_HANDLED
        }
        let sender = Self.string(dbus_message_get_sender(message))
        Task {
            defer { self.callsInFlight.subtract(1, ordering: .relaxed) }
            guard let args = DBusValue.readAll(ref.pointer) else {
                self.reply(to: ref, .failure(.invalidArgs("arguments of a type this service does not accept")))
                return
            }
            let call = MethodCall(sender: sender, path: path, interface: interface, member: member, signature: signature, arguments: args)
            let result = await object.handle(call)
            self.reply(to: ref, result)
        }
        return DBUS_HANDLER_RESULT_HANDLED
    }

    static func childNodes(of path: String, in paths: [String]) -> [String] {
        let prefix = path == "/" ? "/" : path + "/"
        var names: [String] = []
        for p in paths where p.hasPrefix(prefix) {
            let rest = p.dropFirst(prefix.count)
            if let first = rest.split(separator: "/").first, !names.contains(String(first)) { names.append(String(first)) }
        }
        return names.sorted()
    }

    /// Sends the one reply of a method call (values or error), then drops the
    /// call. The reply is built on the calling thread: only the send is the
    /// bus thread's, so a large reply never holds it.
    func reply(to call: MessageRef, _ result: Result<[DBusValue], BusError>) {
        defer { dbus_message_unref(call.pointer) }
        if dbus_message_get_no_reply(call.pointer) != 0 { return }
        var replyMessage: OpaquePointer?
        switch Self.checkedSize(result) {
        case .success(let values):
            replyMessage = dbus_message_new_method_return(call.pointer)
            if let m = replyMessage {
                do { try DBusValue.appendAll(values, to: m) } catch {
                    logger.error("cannot encode a reply", metadata: ["error": "\(error)"])
                    dbus_message_unref(m)
                    replyMessage = Self.errorMessage(for: call.pointer, .failed("internal error encoding the reply"))
                }
            }
        case .failure(let error):
            replyMessage = Self.errorMessage(for: call.pointer, error)
        }
        guard let m = replyMessage else { return }
        let ref = MessageRef(pointer: m)
        let accepted = submit { conn in
            dbus_connection_send(conn, ref.pointer, nil)
            dbus_message_unref(ref.pointer)
        }
        if !accepted { dbus_message_unref(m) }
    }

    /// A reply that would pass the bus's limit becomes LimitsExceeded.
    static func checkedSize(_ result: Result<[DBusValue], BusError>) -> Result<[DBusValue], BusError> {
        guard case .success(let values) = result else { return result }
        let size = values.reduce(0) { $0 + $1.encodedSizeBound }
        guard size > maxMessageBytes - headerSlack else { return result }
        return .failure(.limitsExceeded("the reply would be about \(size >> 20) MiB, more than a D-Bus message may carry (\(maxMessageBytes >> 20) MiB)"))
    }

    static func errorMessage(for call: OpaquePointer, _ error: BusError) -> OpaquePointer? {
        let valid = error.name.withCString { dbus_validate_error_name($0, nil) } != 0
        let name = valid ? error.name : "org.freedesktop.DBus.Error.Failed"
        // An error message is text for a person: a few KiB at most, whatever it quotes.
        let message = error.message.utf8.count > 4096 ? String(decoding: error.message.utf8.prefix(4096), as: UTF8.self) + "…" : error.message
        return name.withCString { n in DBusValue.sanitized(message).withCString { dbus_message_new_error(call, n, $0) } }
    }
}
