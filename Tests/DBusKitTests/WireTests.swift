import Testing

@testable import DBusKit

/// Signals marshalled in Swift without a bus: the bytes of many header
/// layouts against libdbus's own marshalling.
@Suite struct WireTests {
    static let paths = ["/", "/a", "/ab", "/abc", "/abcd", "/a/b_c/D9", "/" + String(repeating: "p", count: 61)]
    static let interfaces = ["a.b", "org.example.Test", "x.y.z1", "io.github.icwsbridge.Bridge1.Interactions"]
    static let members = ["M", "Me", "Mem", "Memb", "LongMemberName_x"]

    @Test func headersOfEveryLayoutAreLibdbusByteForByte() throws {
        // Each shape the writer has, with the value libdbus builds for it.
        let shapes: [(String, [DBusValue], (inout ArgumentWriter) -> Void)] = [
            ("", [], { _ in }),
            ("b", [.bool(true)], { $0.bool(true) }),
            ("aa{sv}b", [.vardicts([]), .bool(false)], { w in
                w.vardicts { _ in }
                w.bool(false)
            }),
            ("aa{sv}", [.vardicts([.vardict([]), .vardict([("k", .string("v")), ("n", .uint32(7)), ("e", .stringDict([]))])])], { w in
                w.vardicts { a in
                    a.vardict { _ in }
                    a.vardict { d in
                        d.string("k", "v")
                        d.uint32("n", 7)
                        d.stringDict("e", [])
                    }
                }
            }),
        ]
        for path in Self.paths {
            for interface in Self.interfaces {
                for member in Self.members {
                    for (signature, values, write) in shapes {
                        let built = try WireCheck.bytes(path: path, interface: interface, member: member, arguments: values).get()
                        let bound = values.reduce(0) { $0 + $1.encodedSizeBound }
                        let written = try WireCheck.bytes(
                            path: path, interface: interface, member: member, signature: signature, sizeBound: bound, write: write
                        ).get()
                        #expect(written == built, "\(path) \(interface).\(member) (\(signature))")
                    }
                }
            }
        }
    }

    @Test func aNameWithANULIsRefused() {
        for (path, interface, member) in [("/a\u{0}/b", "a.b", "M"), ("/a", "a.b\u{0}x", "M"), ("/a", "a.b", "M\u{0}")] {
            let r = WireCheck.bytes(path: path, interface: interface, member: member, signature: "", sizeBound: 0) { _ in }
            #expect(throws: BusError.self) { try r.get() }
        }
    }
}
