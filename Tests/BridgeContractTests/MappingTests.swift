import Bridge
import ICWS
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Testing
import TestSupport

@Suite struct MappingTests {
    @Test func jsonToDBus() throws {
        let json = try JSONValue.parse(#"{"s":"x","b":true,"i":7,"d":1.5,"a":[1,"two",null],"o":{"k":null,"v":1},"n":null}"#)
        let v = JSONToDBus.value(json)
        #expect(v?["s"] == .string("x"))
        #expect(v?["b"] == .bool(true))
        #expect(v?["i"] == .int64(7))
        #expect(v?["d"] == .double(1.5))
        #expect(v?["a"] == .array(element: "v", [.variant(.int64(1)), .variant(.string("two"))]))
        #expect(v?["o"]?["v"] == .int64(1))
        #expect(v?["o"]?["clearedProperties"] == .strings(["k"]))
        #expect(v?["clearedProperties"] == .strings(["n"]))
        #expect(v?["n"] == nil)
    }

    @Test func stationInfoNeverCarriesTheSipPassword() {
        var s = StationInformation()
        s.id = "7001"
        s.sipUser = "u"
        s.sipPassword = Secret("hunter2")
        s.stationSetting = 1
        s.allowedMediaTypes = [1, 2]
        let m = ContractMaps.stationInfo(s)
        #expect(m["id"] == .string("7001") && m["sipUser"] == .string("u") && m["stationSetting"] == .uint32(1))
        #expect(m["allowedMediaTypes"] == .array(element: "u", [.uint32(1), .uint32(2)]))
        #expect(m["sipPassword"] == nil && !m.description.contains("hunter2"))
        #expect(m["extension"] == nil, "keys ICWS did not send are left out")
    }

    @Test func connectSettingsParsing() throws {
        let ok = try ContractMaps.parseConnect(.vardict([
            ("type", .string("workstation")), ("workstation", .string("7001")), ("readyForInteractions", .bool(true)),
            ("supportedMediaTypes", .strings(["call", "Chat"])), ("stationConnectionMode", .uint32(1)),
        ]))
        #expect(ok == StationSettings(kind: .workstation, workstation: "7001", supportedMediaTypes: [1, 2], readyForInteractions: true, stationConnectionMode: 1))
        #expect(try ContractMaps.parseConnect(.vardict([("type", .string("stationless"))])).readyForInteractions == false)
        let cases: [(DBusValue, String)] = [
            (.vardict([]), "\"type\" is required"),
            (.vardict([("type", .string("fax"))]), "\"type\" must be one of"),
            (.vardict([("type", .string("workstation"))]), "\"workstation\" is required"),
            (.vardict([("type", .string("remoteNumber"))]), "\"remoteNumber\" is required"),
            (.vardict([("type", .string("workstation")), ("workstation", .int32(7001))]), "\"workstation\" must be of type s, not i"),
            (.vardict([("type", .string("stationless")), ("color", .string("red"))]), "unknown key \"color\""),
            (.vardict([("type", .string("stationless")), ("supportedMediaTypes", .strings(["fax"]))]), "unknown media type \"fax\""),
            (.vardict([("type", .string("stationless")), ("persistentConnection", .bool(true))]), "\"persistentConnection\" applies only"),
        ]
        for (value, message) in cases {
            do {
                _ = try ContractMaps.parseConnect(value)
                Issue.record("expected InvalidArgs for \(value)")
            } catch {
                #expect(error.name == "org.freedesktop.DBus.Error.InvalidArgs")
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }

    @Test func errorNames() {
        func name(_ e: ICWSError) -> String { ContractMaps.busError(e).name.replacingOccurrences(of: BridgeNames.errorPrefix, with: "") }
        #expect(name(ICWSError(kind: .notConnected, message: "")) == "NotConnected")
        #expect(name(ICWSError(kind: .timeout, message: "")) == "Timeout")
        #expect(name(ICWSError(kind: .server(status: 403), errorId: "error.request.accessDenied.noRights", message: "no")) == "Forbidden")
        #expect(name(ICWSError(kind: .server(status: 400), errorId: "error.request.connection.unknownStation", message: "x")) == "UnknownStation")
        #expect(name(ICWSError(kind: .server(status: 400), errorId: "error.request.connection.noLicense", message: "x")) == "NoLicense")
        #expect(name(ICWSError(kind: .server(status: 500), errorId: "error.request.internalServerError", message: "boom")) == "ServerError")
        #expect(ContractMaps.busError(ICWSError(kind: .server(status: 500), errorId: "error.request.internalServerError", message: "boom")).message.contains("error.request.internalServerError: boom"))
        #expect(ContractMaps.busError(StationCommandError.noStation).name == BridgeNames.errorPrefix + "NoStation")
    }

    @Test func alertingCacheHonoursIsDelta() {
        var c = AlertingCache()
        let a = InteractionAlertDetail(interactionId: "a", alertAction: 1)
        let b = InteractionAlertDetail(interactionId: "b", alertAction: 1)
        c.apply(.init(isDelta: false, details: [a, b]))
        #expect(c.current.map(\.interactionId) == ["a", "b"])
        c.apply(.init(isDelta: true, details: [InteractionAlertDetail(interactionId: "a", alertAction: 2), InteractionAlertDetail(interactionId: "c", alertAction: 1)]))
        #expect(c.current.map(\.interactionId) == ["b", "c"])
        c.apply(.init(isDelta: true, details: [InteractionAlertDetail(interactionId: "zz", alertAction: 2)]))
        #expect(c.count == 2)
        c.apply(.init(isDelta: false, details: [InteractionAlertDetail(interactionId: "d", alertAction: 1)]))
        #expect(c.current.map(\.interactionId) == ["d"])
    }

    @Test func usersCacheMergesAndReplaces() {
        var c = UsersCache()
        c.apply(.init(isDelta: false, added: [UserEntry(id: "a", displayName: "A", properties: [("extension", "1"), ("statusText", "Available")]), UserEntry(id: "b", properties: [("extension", "2")])]))
        #expect(c.count == 2)
        c.apply(.init(isDelta: true, changed: [UserEntry(id: "a", properties: [("statusText", "Lunch"), ("extension", nil)])], removed: ["b"]))
        #expect(c.user("a") == UserEntry(id: "a", displayName: "A", properties: [("statusText", "Lunch")]))
        #expect(c.user("b") == nil && c.count == 1)
        c.apply(.init(isDelta: true, added: [UserEntry(id: "c")]))
        #expect(c.all.map(\.id) == ["a", "c"])
        c.apply(.init(isDelta: false, added: [UserEntry(id: "z")]))
        #expect(c.all.map(\.id) == ["z"])
        for i in 0..<200 { c.apply(.init(isDelta: true, added: [UserEntry(id: "u\(i)")])) }
        c.apply(.init(isDelta: true, removed: (0..<150).map { "u\($0)" }))
        #expect(c.count == 51 && c.all.first?.id == "z" && c.user("u199") != nil)
    }

    /// The generated tables are the shipped XML, member for member and in order.
    @Test func generatedContractIsTheXML() throws {
        let xml = try BridgeNames.interfaces().filter { $0.name != BridgeNames.objectManager } + BridgeNames.interactionInterfaces() + BridgeNames.workgroupInterfaces()
        func key(_ i: String, _ n: String) -> String { i + "." + n }
        #expect(
            Set(Contract.xmlMethods.map { key($0.interface, $0.name) + "(\($0.inSignature))→(\($0.outSignature))" })
                == Set(xml.flatMap { i in i.methods.map { key(i.name, $0.name) + "(\($0.inSignature))→(\($0.outSignature))" } }))
        #expect(
            Set(Contract.xmlSignals.map { key($0.interface, $0.name) + "(\($0.signature))" })
                == Set(xml.flatMap { i in i.signals.map { key(i.name, $0.name) + "(\($0.signature))" } }))
        #expect(
            Set(Contract.xmlProperties.map { key($0.interface, $0.name) + $0.type })
                == Set(xml.flatMap { i in i.properties.map { key(i.name, $0.name) + $0.type } }))
        #expect(Contract.Station.setReady.inSignature == "b")
        #expect(Contract.Interaction.methods.count == xml.first { $0.name == BridgeNames.interaction }?.methods.count)
    }

    @Test func embeddedInterfaceXMLMatchesTheShippedFiles() throws {
        let dir = repositoryRoot.appendingPathComponent("dbus/interfaces")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".xml") }.sorted()
        #expect(files.count == 7)
        #expect(InterfaceXML.files.map { $0.name + ".xml" } == files)
        for (name, xml) in InterfaceXML.files {
            let shipped = try String(contentsOf: dir.appendingPathComponent(name + ".xml"), encoding: .utf8)
            #expect(shipped == xml, "\(name): the generated contract is stale")
        }
        let interfaces = try BridgeNames.interfaces()
        #expect(
            interfaces.map(\.name) == [
                BridgeNames.interactions, BridgeNames.session, BridgeNames.station, BridgeNames.status, BridgeNames.users, BridgeNames.objectManager,
            ])
        #expect(interfaces.first { $0.name == BridgeNames.status }?.method("SetStatus")?.inSignature == "sa{sv}")
        #expect(try BridgeNames.interactionInterfaces().map(\.name) == [BridgeNames.interaction])
        #expect(interfaces.first { $0.name == BridgeNames.interactions }?.method("Dial")?.outSignature == "o")
        #expect(interfaces.first { $0.name == BridgeNames.station }?.method("GetSipCredentials")?.outSignature == "sss")
        #expect(interfaces.first { $0.name == BridgeNames.users }?.signal("UsersChanged")?.signature == "aa{sv}aa{sv}asb")
        #expect(interfaces.first { $0.name == BridgeNames.station }?.signal("StationConnectionStateChanged")?.signature == "a{sv}a{sv}b")
        #expect(interfaces.first { $0.name == BridgeNames.interactions }?.signal("InteractionAlerting")?.signature == "aa{sv}b")
    }

    /// The wrap-up's `time` and `segmentId` come from these two.
    @Test func compactTimesAndSegmentIds() {
        for seconds: Int64 in [0, 86_399, 86_400, 951_782_400, 1_709_302_502, 4_102_444_800, 253_402_300_799] {
            let text = ContractMaps.compactUTC(seconds)
            #expect(text.utf8.count == 16 && ContractMaps.unixSeconds(text) == seconds, "\(seconds) → \(text)")
        }
        #expect(ContractMaps.compactUTC(1_709_302_502) == "20240301T141502Z")
        // The value's syntax is not published: any SID key, the last wins; none is nil.
        #expect(ContractMaps.lastSegmentId("IID=1001;SID=2;WUR=1|IID=1001;SID=3;WUR=1") == 3)
        #expect(ContractMaps.lastSegmentId(#"[{"SID":"7","DQU":"Sales"}]"#) == 7)
        #expect(ContractMaps.lastSegmentId("SIID=9;XSID=4;SID:12") == 12)
        for unreadable in ["", "SID", "SID=", "SIDE=4", "segment 3", String(repeating: "SID=", count: 10_000)] {
            #expect(ContractMaps.lastSegmentId(unreadable) == nil, "\(unreadable.prefix(20))")
        }
        #expect(ContractMaps.lastSegmentId("SID=99999999999999999999") == 999_999_999, "digits are capped, never an overflow")
    }
}
