import FuzzTargets
import Foundation
import ICWSProtocol
import Testing

@Suite struct JSONTests {
    @Test func parsesAllKinds() throws {
        let v = try JSONValue.parse(#"{"a":1,"b":-2.5,"c":"x\"y\u00e9\ud83d\ude00","d":[true,false,null],"e":{},"f":1e3}"#)
        #expect(v["a"] == .int(1))
        #expect(v["b"] == .double(-2.5))
        #expect(v["c"] == .string("x\"yé😀"))
        #expect(v["d"] == .array([.bool(true), .bool(false), .null]))
        #expect(v["e"] == .object([]))
        #expect(v["f"] == .double(1000))
    }

    @Test func roundTrips() throws {
        let v: JSONValue = ["s": "line\nbreak\u{1}", "n": 12, "d": 1.5, "a": [nil, true]]
        #expect(try JSONValue.parse(v.serialized()) == v)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "01", "\"\\x\"", "\"\u{1}\"", "[1] x", "\"\\ud800\"", "-", "1.", "1e"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        let ok = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
    }

    @Test func errorNamesOffset() {
        do {
            _ = try JSONValue.parse("[1, 2, x]")
            Issue.record("expected an error")
        } catch {
            #expect(error.offset == 7)
        }
    }
}

@Suite struct SSEParserTests {
    func parse(_ chunks: [String], max: Int = 1 << 20) throws -> [SSEParser.Output] {
        var p = SSEParser(maxEventBytes: max)
        var out: [SSEParser.Output] = []
        for c in chunks { try p.feed(Array(c.utf8)) { out.append($0) } }
        return out
    }

    @Test func lineEndingsAndSplits() throws {
        let all = "data: a\n\ndata: b\r\rdata: c\r\n\r\n:ping\n\n"
        let expected: [SSEParser.Output] = [.event(.init(data: "a")), .event(.init(data: "b")), .event(.init(data: "c")), .comment]
        #expect(try parse([all]) == expected)
        // Every split point, including inside a CRLF.
        for i in 0...all.utf8.count {
            let bytes = Array(all.utf8)
            var p = SSEParser()
            var out: [SSEParser.Output] = []
            try p.feed(bytes[..<i]) { out.append($0) }
            try p.feed(bytes[i...]) { out.append($0) }
            #expect(out == expected, "split at \(i)")
        }
    }

    @Test func multiLineDataEventTypeAndId() throws {
        let out = try parse(["event: custom\nid: 7\ndata: {\"a\":\ndata:1}\nretry: 10\nunknown: x\n\n"])
        #expect(out == [.event(.init(type: "custom", data: "{\"a\":\n1}", id: "7"))])
    }

    @Test func emptyDataIsNotDispatched() throws {
        #expect(try parse(["data:\n\n", "\n\n"]) == [])
    }

    @Test func oversizedEventIsAnError() {
        #expect(throws: SSEParseError.self) { try parse(["data: " + String(repeating: "x", count: 2000)], max: 1000) }
    }

    @Test func byteOrderMarkIsSkipped() throws {
        #expect(try parse(["\u{FEFF}data: x\n\n"]) == [.event(.init(data: "x"))])
    }
}

@Suite struct ChallengeTests {
    let base = ServerURL(string: "https://cic1.example.net:8019")!

    @Test func parsesTheICWSChallenge() {
        let c = AuthChallenge.parse(header: #"ICWS realm="ICWS" location="/ICWS/connection""#)
        #expect(c == AuthChallenge(realm: "ICWS", location: "/ICWS/connection"))
    }

    @Test func parsesCommasCaseAndOtherSchemes() {
        #expect(AuthChallenge.parse(header: #"Basic realm="x", icws Realm="ICWS", Location="/icws/connection""#)?.location == "/icws/connection")
        #expect(AuthChallenge.parse(header: #"ICWS location=/ICWS/connection"#)?.location == "/ICWS/connection")
        #expect(AuthChallenge.parse(header: #"ICWS realm="a\"b""#)?.realm == "a\"b")
        #expect(AuthChallenge.parse(header: "Basic realm=\"x\"") == nil)
        #expect(AuthChallenge.parse(header: "") == nil)
        #expect(AuthChallenge.parse(header: "ICWS") == AuthChallenge())
    }

    @Test func resolvesRelativeAndAbsoluteLocations() {
        #expect(AuthChallenge(location: "/ICWS/connection").loginBase(relativeTo: base) == base)
        #expect(AuthChallenge(location: "/icws/connection/").loginBase(relativeTo: base) == base)
        #expect(AuthChallenge(location: nil).loginBase(relativeTo: base) == base)
        let other = AuthChallenge(location: "https://cic2.example.net:9019/ICWS/connection").loginBase(relativeTo: base)
        #expect(other == ServerURL(scheme: "https", host: "cic2.example.net", port: 9019))
        let prefixed = AuthChallenge(location: "/proxy/icws/connection").loginBase(relativeTo: base)
        #expect(prefixed == ServerURL(scheme: "https", host: "cic1.example.net", port: 8019, path: "/proxy"))
    }

    @Test func serverURLs() {
        #expect(ServerURL(string: "http://h")?.port == 8018)
        #expect(ServerURL(string: "https://h")?.port == 8019)
        #expect(ServerURL(string: "https://[::1]:99/x/")?.description == "https://[::1]:99/x")
        #expect(ServerURL(string: "https://user:pw@h") == nil)
        #expect(ServerURL(string: "ftp://h") == nil)
        #expect(ServerURL(string: "https://h:0") == nil)
        #expect(ServerURL(string: "https://h:abc") == nil)
        #expect(ServerURL(string: "h:8019") == nil)
    }
}

/// Every file of the fuzz corpora (seeds and each crash ever found) goes
/// through the fuzz entry points: these stay fixed.
@Suite struct FuzzCorpusTests {
    @Test(arguments: ["sse", "message", "challenge", "bus"]) func corpusReplays(_ target: String) throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus/\(target)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(!files.isEmpty)
        for f in files {
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent(f)))
            bytes.withUnsafeBufferPointer { buffer in
                switch target {
                case "sse": FuzzEntries.sse(buffer)
                case "message": FuzzEntries.message(buffer)
                case "bus": FuzzEntries.bus(buffer)
                default: FuzzEntries.challenge(buffer)
                }
            }
        }
    }
}

@Suite struct TextTests {
    @Test func trimmedDropsOuterWhiteSpaceOnly() {
        #expect("  a b \t\r\n".trimmed == "a b")
        #expect("\r\n \t".trimmed == "")
        #expect("".trimmed == "")
        #expect("x"[...].trimmed == "x")
    }

    @Test func octalHasFourDigitsAtLeast() {
        #expect(octal(0o600 as UInt32) == "0600")
        #expect(octal(0o4755 as UInt32) == "4755")
        #expect(octal(0 as Int) == "0000")
    }
}
