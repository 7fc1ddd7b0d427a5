import Logging
import Synchronization

/// An exported object: interfaces from introspection XML, method handlers,
/// properties (Get, GetAll, Set where writable, PropertiesChanged) and
/// `Introspect` served from the same XML.
public final class BusObject: Sendable {
    public typealias Handler = @Sendable (MethodCall) async throws(BusError) -> [DBusValue]
    public typealias Setter = @Sendable (DBusValue) async throws(BusError) -> Void
    /// The value of a property now (nil: none yet), read from the owner's model.
    public typealias PropertyReader = @Sendable (_ interface: String, _ name: String) -> DBusValue?

    public let path: String
    public let interfaces: [InterfaceDescription]
    private let handlers = Mutex<[String: Handler]>([:])
    private let setters = Mutex<[String: Setter]>([:])
    /// Where property values come from: the owner's model, read on demand
    /// (the object keeps no copy of its own).
    private let reader = Mutex<PropertyReader?>(nil)
    let connection = Mutex<BusConnection?>(nil)

    static let introspectionHeader =
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
        + " \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"

    public init(path: String, interfaces: [InterfaceDescription]) {
        self.path = path
        self.interfaces = interfaces
    }

    func attach(_ c: BusConnection) { connection.withLock { $0 = c } }

    public func interface(_ name: String) -> InterfaceDescription? { interfaces.first { $0.name == name } }

    /// Sets the handler of a method declared in the XML.
    public func onMethod(_ interface: String, _ member: String, _ handler: @escaping Handler) {
        handlers.withLock { $0[interface + "." + member] = handler }
    }

    /// The methods of the XML that have no handler, as `interface.member`
    /// (checked at start-up: a call to one would only fail when made).
    public var unboundMethods: [String] {
        let bound = handlers.withLock { Set($0.keys) }
        return interfaces.flatMap { i in i.methods.map { i.name + "." + $0.name } }.filter { !bound.contains($0) }
    }

    /// Makes a property writable through `Properties.Set` (it must be declared writable).
    public func onSetProperty(_ interface: String, _ name: String, _ setter: @escaping Setter) {
        setters.withLock { $0[interface + "." + name] = setter }
    }

    /// Properties are read through `reader` from now on (Get, GetAll and
    /// what `InterfacesAdded` carries): the owner's model is the one store.
    public func readProperties(from reader: @escaping PropertyReader) {
        self.reader.withLock { $0 = reader }
    }

    /// The value of a property now, from the owner's model (nil: none yet).
    /// The model answers with the declared type (the bridge renders through
    /// the typed constructors generated from the XML).
    public func property(_ interface: String, _ name: String) -> DBusValue? {
        reader.withLock({ $0 })?(interface, name)
    }

    /// Announces changed properties in one `PropertiesChanged`: `changed`
    /// with their new values (the owner's model already holds them; it says
    /// what changed), `invalidated` by name only, for values too large to
    /// send on every change (Get and GetAll read them). Values of the wrong
    /// type, and properties the XML does not have, are refused.
    public func announce(_ interface: String, changed: [(String, DBusValue)], invalidated: [String] = []) throws(BusError) {
        guard let desc = self.interface(interface) else { throw .unknownInterface(interface) }
        for (name, value) in changed {
            guard let p = desc.property(name) else { throw .unknownProperty("\(interface).\(name)") }
            guard p.type == value.signature else {
                throw .invalidArgs("property \(name) is \(p.type), not \(value.signature)")
            }
        }
        for name in invalidated where desc.property(name) == nil { throw .unknownProperty("\(interface).\(name)") }
        guard !(changed.isEmpty && invalidated.isEmpty), let c = connection.withLock({ $0 }) else { return }
        try c.emitSignal(
            path: path, interface: "org.freedesktop.DBus.Properties", member: "PropertiesChanged",
            arguments: [.string(interface), .vardict(changed), .strings(invalidated)])
    }

    /// Emits a signal declared in the XML, checking its signature.
    public func emit(_ interface: String, _ member: String, _ arguments: [DBusValue]) throws(BusError) {
        guard let s = self.interface(interface)?.signal(member) else { throw .unknownMethod("no signal \(interface).\(member)") }
        guard DBusValue.signatures(of: arguments, are: s.signature) else {
            throw .invalidArgs("signal \(member) is (\(s.signature)), not (\(arguments.map(\.signature).joined()))")
        }
        guard let c = connection.withLock({ $0 }) else { throw .disconnected("object not exported") }
        try c.emitSignal(path: path, interface: interface, member: member, arguments: arguments)
    }

    public var introspectionXML: String { introspectionXML(children: []) }

    /// The introspection data, listing the objects exported below this one as nodes.
    func introspectionXML(children: [String]) -> String {
        Self.introspectionHeader + "<node>\n" + StandardInterfaces.xml
            + interfaces.map { "  " + $0.xml + "\n" }.joined() + children.map { "  <node name=\"\($0)\"/>\n" }.joined() + "</node>\n"
    }

    /// The readable properties of `interface` with their values (what GetAll answers).
    public func propertyValues(_ interface: String) -> [(String, DBusValue)] {
        guard let iface = self.interface(interface) else { return [] }
        return iface.properties.filter(\.readable).compactMap { p in property(interface, p.name).map { (p.name, $0) } }
    }

    // MARK: Dispatch

    func handle(_ call: MethodCall) async -> Result<[DBusValue], BusError> {
        do throws(BusError) {
            return .success(try await dispatch(call))
        } catch {
            return .failure(error)
        }
    }

    private func dispatch(_ call: MethodCall) async throws(BusError) -> [DBusValue] {
        switch (call.interface, call.member) {
        case ("org.freedesktop.DBus.Introspectable", "Introspect"), ("", "Introspect"):
            return [.string(introspectionXML(children: connection.withLock({ $0 })?.exportedChildren(of: path) ?? []))]
        case ("org.freedesktop.DBus.Properties", let member):
            return try await propertiesCall(member, call)
        default: break
        }
        let candidates = call.interface.isEmpty ? interfaces : interfaces.filter { $0.name == call.interface }
        if candidates.isEmpty { throw .unknownInterface("no interface \(call.interface) at \(path)") }
        guard let iface = candidates.first(where: { $0.method(call.member) != nil }),
            let method = iface.method(call.member)
        else { throw .unknownMethod("no method \(call.member) in \(call.interface.isEmpty ? path : call.interface)") }
        guard call.signature == method.inSignature else {
            throw .invalidArgs("\(iface.name).\(method.name) takes (\(method.inSignature)), not (\(call.signature))")
        }
        guard let handler = handlers.withLock({ $0[iface.name + "." + method.name] }) else {
            throw .unknownMethod("\(iface.name).\(method.name) is not implemented")
        }
        let values = try await handler(call)
        let out = values.map(\.signature).joined()
        guard out == method.outSignature else {
            throw .failed("internal error: \(method.name) returned (\(out)) instead of (\(method.outSignature))")
        }
        return values
    }

    private func propertiesCall(_ member: String, _ call: MethodCall) async throws(BusError) -> [DBusValue] {
        let args = call.arguments
        switch member {
        case "Get":
            guard call.signature == "ss", case .string(let i) = args[0], case .string(let n) = args[1] else {
                throw .invalidArgs("Get takes (ss)")
            }
            guard let iface = interface(i) else { throw .unknownInterface("no interface \(i) at \(path)") }
            guard let p = iface.property(n) else { throw .unknownProperty("no property \(i).\(n)") }
            guard p.readable else { throw .accessDenied("property \(n) is not readable") }
            guard let v = property(i, n) else { throw .failed("property \(n) has no value yet") }
            return [.variant(v)]
        case "GetAll":
            guard call.signature == "s", case .string(let i) = args[0] else { throw .invalidArgs("GetAll takes (s)") }
            guard let iface = interface(i) else {
                // The spec allows an empty result for an interface the object does not have.
                if i.isEmpty { return [.vardict(allProperties())] }
                throw .unknownInterface("no interface \(i) at \(path)")
            }
            return [.vardict(iface.properties.filter(\.readable).compactMap { p in property(i, p.name).map { (p.name, $0) } })]
        case "Set":
            guard call.signature == "ssv", case .string(let i) = args[0], case .string(let n) = args[1],
                case .variant(let v) = args[2]
            else { throw .invalidArgs("Set takes (ssv)") }
            guard let iface = interface(i) else { throw .unknownInterface("no interface \(i) at \(path)") }
            guard let p = iface.property(n) else { throw .unknownProperty("no property \(i).\(n)") }
            guard p.writable, let setter = setters.withLock({ $0[i + "." + n] }) else {
                throw .propertyReadOnly("property \(i).\(n) is read-only")
            }
            guard v.signature == p.type else { throw .invalidArgs("property \(n) is \(p.type), not \(v.signature)") }
            try await setter(v)
            return []
        default:
            throw .unknownMethod("no method \(member) in org.freedesktop.DBus.Properties")
        }
    }

    private func allProperties() -> [(String, DBusValue)] {
        interfaces.flatMap { iface in
            iface.properties.filter(\.readable).compactMap { p in property(iface.name, p.name).map { (p.name, $0) } }
        }
    }

    /// The argument signature a call must have, checked on the bus thread
    /// before any argument is read: nil when the member is unknown here (the
    /// dispatch then answers with the right error).
    func expectedSignature(interface: String, member: String) -> String? {
        switch (interface, member) {
        case ("org.freedesktop.DBus.Introspectable", "Introspect"), ("", "Introspect"): return ""
        case ("org.freedesktop.DBus.Properties", "Get"): return "ss"
        case ("org.freedesktop.DBus.Properties", "GetAll"): return "s"
        case ("org.freedesktop.DBus.Properties", "Set"): return "ssv"
        default: break
        }
        let candidates = interface.isEmpty ? interfaces : interfaces.filter { $0.name == interface }
        return candidates.lazy.compactMap { $0.method(member)?.inSignature }.first
    }
}
