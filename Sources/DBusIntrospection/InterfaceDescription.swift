import FoundationEssentials

/// Why an introspection document could not be read.
public struct IntrospectionError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One D-Bus interface as its introspection XML describes it. The XML files
/// shipped in `dbus/interfaces/` are the single source: the exported object
/// checks calls against them and serves them verbatim to `Introspect`.
public struct InterfaceDescription: Sendable, Equatable {
    public struct Method: Sendable, Equatable {
        public var name: String
        public var inSignature: String
        public var outSignature: String
        public var inArgNames: [String]
    }
    public struct Signal: Sendable, Equatable {
        public var name: String
        public var signature: String
    }
    public struct Property: Sendable, Equatable {
        public var name: String
        public var type: String
        public var access: String
        public var readable: Bool { access == "read" || access == "readwrite" }
        public var writable: Bool { access == "write" || access == "readwrite" }
    }

    public var name: String
    public var methods: [Method] = []
    public var signals: [Signal] = []
    public var properties: [Property] = []
    /// The `<interface>…</interface>` element as written in the file.
    public var xml: String

    public func method(_ name: String) -> Method? { methods.first { $0.name == name } }
    public func signal(_ name: String) -> Signal? { signals.first { $0.name == name } }
    public func property(_ name: String) -> Property? { properties.first { $0.name == name } }

    /// Parses every `<interface>` in an introspection document.
    public static func read(xml: String) throws(IntrospectionError) -> [InterfaceDescription] {
        var result: [InterfaceDescription] = []
        var current: InterfaceDescription?
        var interfaceStart: String.Index?
        var member: (kind: String, name: String, ins: [(String, String)], outs: [String])?
        var i = xml.startIndex
        while let open = xml[i...].firstIndex(of: "<") {
            if xml[open...].hasPrefix("<!--") {
                guard let end = xml[open...].firstRange(of: "-->") else { throw IntrospectionError("unterminated XML comment") }
                i = end.upperBound
                continue
            }
            guard let close = xml[open...].firstIndex(of: ">") else { throw IntrospectionError("unterminated XML tag") }
            let tag = xml[xml.index(after: open)..<close]
            i = xml.index(after: close)
            if tag.hasPrefix("?") || tag.hasPrefix("!") { continue }
            let selfClosing = tag.hasSuffix("/")
            let body = selfClosing ? tag.dropLast() : tag
            let isEnd = body.hasPrefix("/")
            let nameEnd = body.firstIndex(where: { $0 == " " || $0 == "\n" || $0 == "\t" }) ?? body.endIndex
            let element = String(body[(isEnd ? body.index(after: body.startIndex) : body.startIndex)..<nameEnd])
            let attrs = isEnd ? [:] : attributes(String(body[nameEnd...]))
            switch (element, isEnd) {
            case ("interface", false):
                guard let n = attrs["name"] else { throw IntrospectionError("interface without a name") }
                current = InterfaceDescription(name: n, xml: "")
                interfaceStart = open
            case ("interface", true):
                guard var c = current, let start = interfaceStart else { throw IntrospectionError("stray </interface>") }
                c.xml = String(xml[start..<i])
                result.append(c)
                current = nil
            case ("method", false), ("signal", false):
                guard let n = attrs["name"] else { throw IntrospectionError("\(element) without a name") }
                member = (element, n, [], [])
                if selfClosing { finish(&member, into: &current) }
            case ("method", true), ("signal", true):
                finish(&member, into: &current)
            case ("arg", false):
                guard let t = attrs["type"] else { throw IntrospectionError("arg without a type") }
                let direction = attrs["direction"] ?? (member?.kind == "signal" ? "out" : "in")
                if direction == "out" { member?.outs.append(t) } else { member?.ins.append((attrs["name"] ?? "", t)) }
            case ("property", false):
                guard let n = attrs["name"], let t = attrs["type"], let a = attrs["access"] else {
                    throw IntrospectionError("property needs name, type and access")
                }
                current?.properties.append(Property(name: n, type: t, access: a))
            default: break
            }
        }
        return result
    }

    private static func finish(
        _ member: inout (kind: String, name: String, ins: [(String, String)], outs: [String])?,
        into current: inout InterfaceDescription?
    ) {
        guard let m = member else { return }
        if m.kind == "method" {
            current?.methods.append(
                Method(name: m.name, inSignature: m.ins.map(\.1).joined(), outSignature: m.outs.joined(), inArgNames: m.ins.map(\.0)))
        } else {
            current?.signals.append(Signal(name: m.name, signature: m.outs.joined()))
        }
        member = nil
    }

    private static func attributes(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var rest = Substring(text)
        while let eq = rest.firstIndex(of: "=") {
            let key = rest[..<eq].trimmingCharacters(in: " \n\t")
            rest = rest[rest.index(after: eq)...].drop(while: { $0 == " " })
            guard let quote = rest.first, quote == "\"" || quote == "'" else { break }
            rest = rest.dropFirst()
            guard let end = rest.firstIndex(of: quote) else { break }
            result[key] = unescape(String(rest[..<end]))
            rest = rest[rest.index(after: end)...]
        }
        return result
    }

    private static func unescape(_ s: String) -> String {
        s.replacingOccurrences("&lt;", "<").replacingOccurrences("&gt;", ">").replacingOccurrences("&quot;", "\"")
            .replacingOccurrences("&apos;", "'").replacingOccurrences("&amp;", "&")
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        guard contains(target) else { return self }
        return split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// The standard interfaces every exported object has, for `Introspect`.
public enum StandardInterfaces {
    public static let xml = """
          <interface name="org.freedesktop.DBus.Introspectable">
            <method name="Introspect">
              <arg name="xml_data" type="s" direction="out"/>
            </method>
          </interface>
          <interface name="org.freedesktop.DBus.Properties">
            <method name="Get">
              <arg name="interface_name" type="s" direction="in"/>
              <arg name="property_name" type="s" direction="in"/>
              <arg name="value" type="v" direction="out"/>
            </method>
            <method name="GetAll">
              <arg name="interface_name" type="s" direction="in"/>
              <arg name="properties" type="a{sv}" direction="out"/>
            </method>
            <method name="Set">
              <arg name="interface_name" type="s" direction="in"/>
              <arg name="property_name" type="s" direction="in"/>
              <arg name="value" type="v" direction="in"/>
            </method>
            <signal name="PropertiesChanged">
              <arg name="interface_name" type="s"/>
              <arg name="changed_properties" type="a{sv}"/>
              <arg name="invalidated_properties" type="as"/>
            </signal>
          </interface>
          <interface name="org.freedesktop.DBus.Peer">
            <method name="Ping"/>
            <method name="GetMachineId">
              <arg name="machine_uuid" type="s" direction="out"/>
            </method>
          </interface>

        """
}
