import DBusKit

/// A method of the contract: where it lives and what it takes and gives.
public struct MethodSpec: Sendable, Hashable {
    public let interface: String
    public let name: String
    public let inSignature: String
    public let outSignature: String
}

/// A signal of the contract.
public struct SignalSpec: Sendable, Hashable {
    public let interface: String
    public let name: String
    public let signature: String
}

/// A property of the contract (all read-only).
public struct PropertySpec: Sendable, Hashable {
    public let interface: String
    public let name: String
    public let type: String
}

/// The D-Bus contract. Its members, their handler protocols and client
/// proxies are generated from `dbus/interfaces/*.xml` at build time
/// (`Plugins/ContractCodegen`, `Contract.generated.swift`): the XML is the one
/// place the contract is written. Only the standard interface the bridge
/// serves without an XML file of its own is declared here.
public enum Contract {
    public enum ObjectManager {
        public static let interface = BridgeNames.objectManager
        public static let getManagedObjects = MethodSpec(interface: interface, name: "GetManagedObjects", inSignature: "", outSignature: "a{oa{sa{sv}}}")
        public static let interfacesAdded = SignalSpec(interface: interface, name: "InterfacesAdded", signature: "oa{sa{sv}}")
        public static let interfacesRemoved = SignalSpec(interface: interface, name: "InterfacesRemoved", signature: "oas")
    }
}

/// Who called the method being served (a unique bus name), for handlers
/// that log it; "" outside a call.
public enum BusCaller {
    @TaskLocal public static var sender = ""

    /// Runs `body` with `sender` set (the generated bindings call it).
    public static func serve<T: Sendable>(_ sender: String, _ body: () async throws(BusError) -> T) async throws(BusError) -> T {
        let result: Result<T, BusError> = await $sender.withValue(sender) {
            do throws(BusError) { return .success(try await body()) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

/// What the generated bindings read arguments and replies with: a value of
/// exactly the D-Bus type, or nil.
extension DBusValue {
    public var contractString: String? {
        switch unwrapped {
        case .string(let s): return s
        default: return nil
        }
    }

    public var contractObjectPath: String? {
        switch unwrapped {
        case .objectPath(let s): return s
        default: return nil
        }
    }

    public var contractInt64: Int64? {
        switch unwrapped {
        case .int64(let v): return v
        default: return nil
        }
    }

    public var contractStrings: [String]? {
        guard case .array(let element, let items) = unwrapped, element == "s" else { return nil }
        return items.compactMap(\.contractString)
    }

    public var contractObjectPaths: [String]? {
        guard case .array(let element, let items) = unwrapped, element == "o" else { return nil }
        return items.compactMap(\.contractObjectPath)
    }

    public var contractStringPairs: [(String, String)]? {
        guard case .dict(let k, let v, let entries) = unwrapped, k == "s", v == "s" else { return nil }
        return entries.compactMap { e in e.key.contractString.flatMap { key in e.value.contractString.map { (key, $0) } } }
    }

    /// The value (a variant's contents unless `signature` is "v") when it has `signature`.
    public func matching(_ signature: String) -> DBusValue? {
        let v = signature == "v" ? self : unwrapped
        return v.signature == signature ? v : nil
    }
}

extension BusObject {
    /// Binds the handler of a method of the contract.
    public func onMethod(_ spec: MethodSpec, _ handler: @escaping Handler) { onMethod(spec.interface, spec.name, handler) }

    /// Emits a signal of the contract.
    public func emit(_ spec: SignalSpec, _ arguments: [DBusValue]) throws(BusError) { try emit(spec.interface, spec.name, arguments) }

    /// Announces changed properties of the contract (one `PropertiesChanged`
    /// per interface), each made by its typed constructor
    /// (`Contract.Station.Values.ready(true)`).
    public func announce(_ values: [(PropertySpec, DBusValue)]) throws(BusError) {
        var byInterface: [(String, [(String, DBusValue)])] = []
        for (spec, value) in values {
            if let i = byInterface.firstIndex(where: { $0.0 == spec.interface }) {
                byInterface[i].1.append((spec.name, value))
            } else {
                byInterface.append((spec.interface, [(spec.name, value)]))
            }
        }
        for (interface, pairs) in byInterface { try announce(interface, changed: pairs) }
    }

}

/// Properties as a model renders them: the ones that changed between two
/// renderings, and one value looked up by name (the `BusObject` reader).
public enum Rendered {
    /// The entries of `new` whose value differs from `old`'s (or that `old` lacks).
    public static func changes(from old: [(PropertySpec, DBusValue)], to new: [(PropertySpec, DBusValue)]) -> [(PropertySpec, DBusValue)] {
        new.filter { n in !old.contains { $0.0 == n.0 && $0.1 == n.1 } }
    }

    public static func value(_ rendered: [(PropertySpec, DBusValue)], _ interface: String, _ name: String) -> DBusValue? {
        rendered.first { $0.0.interface == interface && $0.0.name == name }?.1
    }
}
