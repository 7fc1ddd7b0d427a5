import BridgeContract
import DBusKit
import Foundation
import Logging
import Testing
import TestSupport

/// The contract generator (Plugins/ContractCodegen runs it at build time) on
/// XML of its own: what a member of each kind becomes, and a clear failure on
/// XML it cannot read. That the daemon implements every method of the shipped
/// XML is the build itself: each is a requirement of its handler protocol.
@Suite struct ContractGenTests {
    static let xml = """
        <node>
          <interface name="org.example.Frob1.Widget">
            <method name="GetSipCredentials">
              <arg name="for_user" type="s" direction="in"/>
              <arg name="flags" type="a{sv}" direction="in"/>
              <arg name="user" type="s" direction="out"/>
              <arg name="port" type="u" direction="out"/>
            </method>
            <method name="Ping"/>
            <method name="SetOn"><arg name="on" type="b" direction="in"/></method>
            <signal name="Changed"><arg name="what" type="as"/></signal>
            <property name="Changed" type="x" access="read"/>
            <property name="Labels" type="a{ss}" access="read"/>
            <property name="default" type="s" access="read"/>
          </interface>
        </node>
        """

    func generate(_ xml: String) async throws -> (CommandResult, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("org.example.Frob1.Widget.xml")
        try xml.write(to: input, atomically: true, encoding: .utf8)
        let output = dir.appendingPathComponent("out.swift").path
        let r = try await runCommand([binary("dbus-contract-gen"), output, input.path])
        return (r, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    @Test func everyKindOfMemberIsTyped() async throws {
        let (r, swift) = try await generate(Self.xml)
        #expect(r.status == 0, "\(r.stderr)")
        // The specs, with clashing names told apart by their kind.
        #expect(swift.contains(#"public static let getSipCredentials = MethodSpec(interface: interface, name: "GetSipCredentials", inSignature: "sa{sv}", outSignature: "su")"#))
        #expect(swift.contains(#"public static let changedSignal = SignalSpec(interface: interface, name: "Changed", signature: "as")"#))
        #expect(swift.contains(#"public static let changedProperty = PropertySpec(interface: interface, name: "Changed", type: "x")"#))
        #expect(swift.contains("public static let `default` = PropertySpec"), "a keyword is escaped")
        // Typed property values: a property can only be given a value of its type.
        #expect(swift.contains("public static func changed(_ value: Int64) -> (PropertySpec, DBusValue) { (Widget.changedProperty, .int64(value)) }"))
        #expect(swift.contains("public static func labels(_ value: [(String, String)]) -> (PropertySpec, DBusValue) { (Widget.labels, DBusValue.stringDict(value)) }"))
        // The handler protocol: typed arguments, a tuple for several results.
        #expect(swift.contains("public protocol WidgetHandler: Sendable {"))
        #expect(swift.contains("func getSipCredentials(_ forUser: String, _ flags: DBusValue) async throws(BusError) -> (String, UInt32)"))
        #expect(swift.contains("func ping() async throws(BusError)\n"))
        #expect(swift.contains("func setOn(_ on: Bool) async throws(BusError)\n"))
        // Arguments are checked before the handler runs.
        #expect(swift.contains(#"guard let a0 = call.arguments[0].boolValue else { throw .invalidArgs("SetOn: on must be b") }"#))
        // The proxy: methods and property getters.
        #expect(swift.contains("public struct WidgetProxy: Sendable {"))
        #expect(swift.contains("public func labels(timeout: Duration = .seconds(25)) async throws(BusError) -> [(String, String)]"))
        #expect(swift.contains("public func changedProperty(timeout: Duration = .seconds(25)) async throws(BusError) -> Int64"))
        // The XML goes in as shipped.
        #expect(swift.contains(Self.xml))
    }

    @Test func xmlItCannotReadFailsTheBuildWithItsReason() async throws {
        for (xml, reason) in [
            ("<node><interface name=\"a.b\"><!-- never closed", "unterminated XML comment"),
            ("<node><interface><method name=\"M\"/></interface></node>", "interface without a name"),
            ("<node></node>", "no <interface>"),
        ] {
            let (r, _) = try await generate(xml)
            #expect(r.status == 1)
            #expect(r.stderr.contains("dbus-contract-gen:") && r.stderr.contains(reason), "\(r.stderr)")
        }
    }

    /// Whoever owns the bridge's name may answer anything: the generated
    /// proxies (what icws-bridgectl and the notifier call) read replies and
    /// properties of the wrong type as a clear error, never as a default.
    @Test func aPeerThatAnswersTheWrongTypesIsAClearError() async throws {
        let bus = try PrivateBus()
        defer { bus.stop() }
        let logger = Logger(label: "contract-gen-tests")
        let impostor = try await BusConnection.connect(.address(bus.address), logger: logger)
        defer { impostor.close() }
        let station = BridgeNames.station
        let xml = """
            <node><interface name="\(station)">
              <method name="GetSipCredentials"><arg name="n" type="u" direction="out"/></method>
              <property name="Connected" type="s" access="read"/>
            </interface></node>
            """
        let object = BusObject(path: BridgeNames.objectPath, interfaces: try InterfaceDescription.parse(xml: xml))
        object.onMethod(station, "GetSipCredentials") { _ throws(BusError) in [.uint32(7)] }
        // An impostor whose model answers Connected with a string.
        object.readProperties { i, name in i == station && name == "Connected" ? .string("yes") : nil }
        impostor.export(object)
        try await impostor.requestName(BridgeNames.busName)

        let client = try await BusConnection.connect(.address(bus.address), logger: logger)
        defer { client.close() }
        let proxy = StationProxy(client)
        do {
            let r = try await proxy.getSipCredentials(timeout: .seconds(5))
            Issue.record("a reply of the wrong type was taken: \(r)")
        } catch {
            #expect(error.message == "the reply of GetSipCredentials is not (sss)", "\(error)")
        }
        do {
            let r = try await proxy.connected(timeout: .seconds(5))
            Issue.record("a property of the wrong type was taken: \(r)")
        } catch {
            #expect(error.message == "Connected is not b", "\(error)")
        }
        let cli = try await runCommand([binary("icws-bridgectl"), "sip-credentials", "--bus", bus.address, "--timeout", "5"])
        #expect(cli.status == 1 && cli.stderr.contains("the reply of GetSipCredentials is not (sss)"), "\(cli.status) \(cli.stderr)")
        #expect(!cli.stdout.contains("password="), "nothing printed as if it were credentials")
    }
}
