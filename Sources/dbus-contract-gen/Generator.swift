import DBusIntrospection
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

// dbus-contract-gen OUTPUT.swift INTERFACE.xml...
//
// Writes the D-Bus contract's Swift bindings for the BridgeContract module
// from the introspection XML files (see Plugins/ContractCodegen): for each
// interface, `Contract.<Name>` with a spec per member and the member lists;
// `<Name>Handler`, a protocol with one typed method per D-Bus method, and
// `Contract.<Name>.bind(_:to:)`, which serves them on an object; and
// `<Name>Proxy`, a typed client. `InterfaceXML.files` embeds the XML as
// shipped. A method added to the XML is a requirement of its handler
// protocol: a daemon that does not implement it does not build.

func fail(_ message: String) -> Never {
    let bytes = Array("dbus-contract-gen: \(message)\n".utf8)
    _ = write(2, bytes, bytes.count)
    exit(1)
}

func readFile(_ path: String) -> String {
    guard let f = fopen(path, "rb") else { fail("cannot read \(path)") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func writeFile(_ path: String, _ text: String) {
    // Unchanged output is not rewritten, so what depends on it is not rebuilt.
    if access(path, R_OK) == 0, readFile(path) == text { return }
    guard let f = fopen(path, "wb") else { fail("cannot write \(path)") }
    let bytes = Array(text.utf8)
    guard fwrite(bytes, 1, bytes.count, f) == bytes.count else { fail("cannot write \(path)") }
    fclose(f)
}

let keywords: Set<String> = [
    "associatedtype", "class", "deinit", "enum", "extension", "func", "import", "init", "inout", "let", "operator", "protocol",
    "static", "struct", "subscript", "typealias", "var", "break", "case", "continue", "default", "defer", "do", "else",
    "fallthrough", "for", "guard", "if", "in", "repeat", "return", "switch", "where", "while", "as", "catch", "false", "is",
    "nil", "rethrows", "super", "self", "Self", "throw", "throws", "true", "try", "Type", "Protocol", "any", "some",
]

/// `GetSipCredentials` → `getSipCredentials`, `interface_name` → `interfaceName`.
func lowerCamel(_ name: String) -> String {
    let parts = name.split(separator: "_").map(String.init)
    guard let first = parts.first, !first.isEmpty else { return "value" }
    var head = first
    // A leading run of capitals is lowered up to the last one before a lowercase letter ("URIScheme" → "uriScheme").
    let chars = Array(head)
    var n = 0
    while n < chars.count, chars[n].isUppercase { n += 1 }
    if n > 1, n < chars.count { n -= 1 }
    head = String(chars[0..<n]).lowercased() + String(chars[n...])
    let rest = parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }
    return head + rest.joined()
}

func identifier(_ name: String) -> String { keywords.contains(name) ? "`\(name)`" : name }

/// How a D-Bus type is held in Swift: the type, how a `DBusValue` is read
/// into it (an optional), and how it is written back.
struct SwiftType {
    var name: String
    var decode: (String) -> String
    var encode: (String) -> String

    static func of(_ signature: String) -> SwiftType {
        switch signature {
        case "b": return SwiftType(name: "Bool", decode: { "\($0).boolValue" }, encode: { ".bool(\($0))" })
        case "s": return SwiftType(name: "String", decode: { "\($0).contractString" }, encode: { ".string(\($0))" })
        case "o": return SwiftType(name: "String", decode: { "\($0).contractObjectPath" }, encode: { ".objectPath(\($0))" })
        case "u": return SwiftType(name: "UInt32", decode: { "\($0).uint32Value" }, encode: { ".uint32(\($0))" })
        case "x": return SwiftType(name: "Int64", decode: { "\($0).contractInt64" }, encode: { ".int64(\($0))" })
        case "as": return SwiftType(name: "[String]", decode: { "\($0).contractStrings" }, encode: { "DBusValue.strings(\($0))" })
        case "ao": return SwiftType(name: "[String]", decode: { "\($0).contractObjectPaths" }, encode: { "DBusValue.objectPaths(\($0))" })
        case "a{ss}":
            return SwiftType(name: "[(String, String)]", decode: { "\($0).contractStringPairs" }, encode: { "DBusValue.stringDict(\($0))" })
        default:
            // Containers of variants stay values: the handler reads them with the mapping of its own.
            return SwiftType(name: "DBusValue", decode: { "\($0).matching(\"\(signature)\")" }, encode: { $0 })
        }
    }
}

/// Single complete types of a signature ("sa{sv}" → ["s", "a{sv}"]).
func split(_ signature: String) -> [String] {
    var result: [String] = []
    let chars = Array(signature)
    var i = 0
    func one() -> String {
        let start = i
        guard i < chars.count else { return "" }
        switch chars[i] {
        case "a":
            i += 1
            _ = one()
        case "(":
            i += 1
            while i < chars.count, chars[i] != ")" { _ = one() }
            i += 1
        case "{":
            i += 1
            while i < chars.count, chars[i] != "}" { _ = one() }
            i += 1
        default:
            i += 1
        }
        return String(chars[start..<min(i, chars.count)])
    }
    while i < chars.count { result.append(one()) }
    return result
}

func quoted(_ s: String) -> String {
    "\"" + s.replacingOccurrences("\\", "\\\\").replacingOccurrences("\"", "\\\"") + "\""
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound] + replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

@main
struct DBusContractGen {
    static func main() {
        // MARK: Reading

        let args = Array(CommandLine.arguments.dropFirst())
        guard args.count >= 2 else { fail("usage: dbus-contract-gen OUTPUT.swift INTERFACE.xml...") }
        let output = args[0]
        var files: [(name: String, xml: String, interfaces: [InterfaceDescription])] = []
        for path in args.dropFirst() {
            let xml = readFile(path)
            let base = String(path.split(separator: "/").last ?? "")
            let name = base.hasSuffix(".xml") ? String(base.dropLast(4)) : base
            do {
                let interfaces = try InterfaceDescription.read(xml: xml)
                guard !interfaces.isEmpty else { fail("\(path): no <interface>") }
                files.append((name, xml, interfaces))
            } catch {
                fail("\(path): \(error.message)")
            }
        }

        // MARK: Writing

        var out = """
            // Generated by dbus-contract-gen (Plugins/ContractCodegen) from dbus/interfaces/*.xml
            // at build time. Do not edit: change the XML.
            import DBusKit

            /// The introspection XML of each interface, exactly as shipped in dbus/interfaces/.
            public enum InterfaceXML {
                public static let files: [(name: String, xml: String)] = [

            """
        for f in files {
            var hashes = "#"
            while f.xml.contains("\"\"\"" + hashes) { hashes += "#" }
            out += "        (\n            \(quoted(f.name)),\n            \(hashes)\"\"\"\n\(f.xml)\n\"\"\"\(hashes)\n        ),\n"
        }
        out += "    ]\n}\n"

        var namespaces: [String] = []
        for f in files {
            for i in f.interfaces {
                let ns = String(i.name.split(separator: ".").last ?? "")
                guard !ns.isEmpty else { fail("interface \(i.name) has no name to use") }
                namespaces.append(ns)
                // Member constants: lowerCamel of the member; a clash between kinds gets the kind as a suffix.
                var counts: [String: Int] = [:]
                for n in i.methods.map(\.name) + i.signals.map(\.name) + i.properties.map(\.name) { counts[lowerCamel(n), default: 0] += 1 }
                func constant(_ name: String, _ kind: String) -> String {
                    let base = lowerCamel(name)
                    return identifier(counts[base, default: 0] > 1 ? base + kind : base)
                }
                out += "\nextension Contract {\n"
                out += "    /// `\(i.name)`, as dbus/interfaces/\(f.name).xml declares it.\n"
                out += "    public enum \(ns) {\n"
                out += "        public static let interface = \(quoted(i.name))\n"
                for m in i.methods {
                    out += "        public static let \(constant(m.name, "Method")) = MethodSpec(interface: interface, name: \(quoted(m.name)), inSignature: \(quoted(m.inSignature)), outSignature: \(quoted(m.outSignature)))\n"
                }
                for s in i.signals {
                    out += "        public static let \(constant(s.name, "Signal")) = SignalSpec(interface: interface, name: \(quoted(s.name)), signature: \(quoted(s.signature)))\n"
                }
                for p in i.properties {
                    out += "        public static let \(constant(p.name, "Property")) = PropertySpec(interface: interface, name: \(quoted(p.name)), type: \(quoted(p.type)))\n"
                }
                out += "        public static let methods: [MethodSpec] = [\(i.methods.map { constant($0.name, "Method") }.joined(separator: ", "))]\n"
                out += "        public static let signals: [SignalSpec] = [\(i.signals.map { constant($0.name, "Signal") }.joined(separator: ", "))]\n"
                out += "        public static let properties: [PropertySpec] = [\(i.properties.map { constant($0.name, "Property") }.joined(separator: ", "))]\n"
                if !i.properties.isEmpty {
                    // Typed property values: `Contract.Station.Values.connected(true)` can only be a `b`.
                    out += "        /// Each property with a value of its own type, for a model's rendering and `BusObject.announce`.\n"
                    out += "        public enum Values {\n"
                    for p in i.properties {
                        let t = SwiftType.of(p.type)
                        let name = identifier(lowerCamel(p.name))
                        out += "            public static func \(name)(_ value: \(t.name)) -> (PropertySpec, DBusValue) { (\(ns).\(constant(p.name, "Property")), \(t.encode("value"))) }\n"
                    }
                    out += "        }\n"
                }
                out += "    }\n}\n"

                // The handler protocol and its binding.
                func parameters(_ m: InterfaceDescription.Method) -> [(name: String, signature: String, type: SwiftType)] {
                    let types = split(m.inSignature)
                    return types.enumerated().map { k, sig in
                        let raw = k < m.inArgNames.count && !m.inArgNames[k].isEmpty ? m.inArgNames[k] : "arg\(k)"
                        return (identifier(lowerCamel(raw)), sig, SwiftType.of(sig))
                    }
                }
                func result(_ m: InterfaceDescription.Method) -> (type: String, types: [(String, SwiftType)]) {
                    let outs = split(m.outSignature).map { ($0, SwiftType.of($0)) }
                    switch outs.count {
                    case 0: return ("Void", outs)
                    case 1: return (outs[0].1.name, outs)
                    default: return ("(" + outs.map(\.1.name).joined(separator: ", ") + ")", outs)
                    }
                }
                if !i.methods.isEmpty {
                    out += "\n/// What serves `\(i.name)`: one method per D-Bus method, with typed arguments.\n"
                    out += "/// `BusCaller.sender` names the caller while one runs.\n"
                    out += "public protocol \(ns)Handler: Sendable {\n"
                    for m in i.methods {
                        let params = parameters(m).map { "_ \($0.name): \($0.type.name)" }.joined(separator: ", ")
                        let r = result(m)
                        out += "    /// \(m.name)(\(m.inSignature)) → (\(m.outSignature))\n"
                        out += "    func \(identifier(lowerCamel(m.name)))(\(params)) async throws(BusError)\(r.type == "Void" ? "" : " -> \(r.type)")\n"
                    }
                    out += "}\n\nextension Contract.\(ns) {\n"
                    out += "    /// Serves every method of `\(i.name)` on `object` with `handler`.\n"
                    out += "    public static func bind(_ handler: some \(ns)Handler, to object: BusObject) {\n"
                    for m in i.methods {
                        let params = parameters(m)
                        out += "        object.onMethod(\(constant(m.name, "Method"))) { call throws(BusError) in\n"
                        out += "            guard call.arguments.count == \(params.count) else { throw .invalidArgs(\"\(m.name) takes (\(m.inSignature))\") }\n"
                        for (k, p) in params.enumerated() {
                            out += "            guard let a\(k) = \(p.type.decode("call.arguments[\(k)]")) else { throw .invalidArgs(\"\(m.name): \(p.name.replacingOccurrences("`", "")) must be \(p.signature)\") }\n"
                        }
                        let callArgs = params.indices.map { "a\($0)" }.joined(separator: ", ")
                        let invoke = "try await BusCaller.serve(call.sender) { () async throws(BusError) in try await handler.\(identifier(lowerCamel(m.name)))(\(callArgs)) }"
                        let r = result(m)
                        switch r.types.count {
                        case 0:
                            out += "            \(invoke)\n            return []\n"
                        case 1:
                            out += "            let r = \(invoke)\n            return [\(r.types[0].1.encode("r"))]\n"
                        default:
                            out += "            let r = \(invoke)\n"
                            out += "            return [\(r.types.enumerated().map { $0.element.1.encode("r.\($0.offset)") }.joined(separator: ", "))]\n"
                        }
                        out += "        }\n"
                    }
                    out += "    }\n}\n"
                }

                // The client proxy.
                out += "\n/// A typed client of `\(i.name)` on one object of one peer.\n"
                out += "public struct \(ns)Proxy: Sendable {\n"
                out += "    public let connection: BusConnection\n    public let destination: String\n    public let path: String\n\n"
                out += "    public init(_ connection: BusConnection, destination: String = BridgeNames.busName, path: String = BridgeNames.objectPath) {\n"
                out += "        self.connection = connection\n        self.destination = destination\n        self.path = path\n    }\n"
                for m in i.methods {
                    let params = parameters(m)
                    let r = result(m)
                    let sig = (params.map { "_ \($0.name): \($0.type.name)" } + ["timeout: Duration = .seconds(25)"]).joined(separator: ", ")
                    out += "\n    /// \(m.name)(\(m.inSignature)) → (\(m.outSignature))\n"
                    out += "    public func \(identifier(lowerCamel(m.name)))(\(sig)) async throws(BusError)\(r.type == "Void" ? "" : " -> \(r.type)") {\n"
                    out += "        let reply = try await connection.call(destination: destination, path: path, interface: Contract.\(ns).interface, member: \(quoted(m.name)), arguments: [\(params.map { $0.type.encode($0.name) }.joined(separator: ", "))], timeout: timeout)\n"
                    switch r.types.count {
                    case 0:
                        out += "        _ = reply\n"
                    default:
                        out += "        guard reply.count == \(r.types.count)"
                        for (k, t) in r.types.enumerated() { out += ", let r\(k) = \(t.1.decode("reply[\(k)]"))" }
                        out += " else { throw .failed(\"the reply of \(m.name) is not (\(m.outSignature))\") }\n"
                        out += "        return \(r.types.count == 1 ? "r0" : "(" + r.types.indices.map { "r\($0)" }.joined(separator: ", ") + ")")\n"
                    }
                    out += "    }\n"
                }
                for p in i.properties {
                    let t = SwiftType.of(p.type)
                    out += "\n    /// The property \(p.name) (\(p.type)).\n"
                    out += "    public func \(constant(p.name, "Property"))(timeout: Duration = .seconds(25)) async throws(BusError) -> \(t.name) {\n"
                    out += "        let reply = try await connection.call(destination: destination, path: path, interface: \"org.freedesktop.DBus.Properties\", member: \"Get\", arguments: [.string(Contract.\(ns).interface), .string(\(quoted(p.name)))], timeout: timeout)\n"
                    out += "        guard let v = reply.first?.unwrapped, let value = \(t.decode("v")) else { throw .failed(\"\(p.name) is not \(p.type)\") }\n"
                    out += "        return value\n    }\n"
                }
                out += "}\n"
            }
        }
        out += "\nextension Contract {\n"
        out += "    /// Every member of the XML, in file order.\n"
        out += "    public static let xmlMethods: [MethodSpec] = \(namespaces.map { "\($0).methods" }.joined(separator: " + "))\n"
        out += "    public static let xmlSignals: [SignalSpec] = \(namespaces.map { "\($0).signals" }.joined(separator: " + "))\n"
        out += "    public static let xmlProperties: [PropertySpec] = \(namespaces.map { "\($0).properties" }.joined(separator: " + "))\n"
        out += "}\n"
        writeFile(output, out)

    }
}
