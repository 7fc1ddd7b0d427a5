import Foundation
@testable import ICWS
import Testing

/// The protocol side of the boundary catalogue (docs/boundaries.md).
@Suite struct LocationPolicyTests {
    let https = ServerURL(string: "https://cic1.example.net")!
    let http = ServerURL(string: "http://cic1.example.net")!

    @Test func httpsNeverGoesToHTTP() {
        let strict = LocationPolicy(allowInsecureHTTP: false)
        let lax = LocationPolicy(allowInsecureHTTP: true)
        let target = AuthChallenge(location: "http://evil.example.net/icws/connection").loginBase(relativeTo: https)
        #expect(target.scheme == "http")
        #expect(strict.refusal(of: target, from: https)?.contains("clear text") == true)
        #expect(lax.refusal(of: target, from: https) != nil, "not even with allow-insecure-http")
        #expect(strict.refusal(of: ServerURL(string: "https://cic2.example.net:9019")!, from: https) == nil, "another https host is fine")
        #expect(strict.refusal(of: http, from: http) != nil, "http needs allow-insecure-http")
        #expect(lax.refusal(of: http, from: http) == nil)
        #expect(lax.refusal(of: https, from: http) == nil, "an upgrade is fine")
    }

    @Test func alternateHostsArePlainHostsOnly() {
        #expect(https.withHost("cic2.example.net")?.description == "https://cic2.example.net:8019")
        #expect(https.withHost("10.0.0.2") != nil)
        #expect(https.withHost("[fe80::1]") != nil)
        for bad in ["evil:443", "evil/x#", "user@evil", "a b", "evil\r\nX: y", "", "-x", String(repeating: "a", count: 300), "[zz]"] {
            #expect(https.withHost(bad) == nil, "\(bad.debugDescription)")
        }
    }

    @Test func challengeLocationsThatAreNotURLsMeanTheCurrentBase() {
        for bad in ["/icws connection", "/icws/\r\nX: y", "//evil.example.net/icws/connection", "javascript:alert(1)", "ftp://x/icws"] {
            #expect(AuthChallenge(location: bad).loginBase(relativeTo: https) == https, "\(bad.debugDescription)")
        }
        #expect(AuthChallenge(location: "/proxy/icws/connection?x=1").loginBase(relativeTo: https).path == "/proxy")
        #expect(ServerURL(string: "https://a.example.net/p a") == nil)
    }
}

@Suite struct TextLimitTests {
    @Test func singleLineCutsAndCleans() {
        #expect("a\rb\nc\u{0}d".singleLine() == "a b c d")
        let long = String(repeating: "é", count: 1000)
        let cut = long.singleLine(maxBytes: 101)
        #expect(cut.hasSuffix("…") && cut.utf8.count <= 101 + 3)
        #expect(cut.dropLast().allSatisfy { $0 == "é" }, "cut on a character boundary")
    }

    @Test func serverErrorTextIsOneShortLine() {
        let body = #"{"errorId":"x\rWATCHDOG=trigger","message":"\#(String(repeating: "m", count: 100_000))","alternateHostList":[\#(Array(repeating: "\"h\"", count: 100).joined(separator: ","))]}"#
        let e = ICWSError.fromResponse(status: 503, body: Array(body.utf8), wwwAuthenticate: [])
        #expect(e.errorId == "x WATCHDOG=trigger")
        #expect(e.message.utf8.count <= 1024 + 3)
        #expect(e.alternateHosts.count == 32)
    }

    @Test func boundedFileRefusesWhatIsNotASmallRegularFile() throws {
        #expect(throws: FileReadError.self) { try BoundedFile.read(path: "/dev/zero", limit: 10) }
        #expect(throws: FileReadError.self) { try BoundedFile.read(path: "/nonexistent/x", limit: 10) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bounded-\(UUID())").path
        try Data(repeating: 65, count: 100).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try BoundedFile.read(path: path, limit: 100).count == 100)
        #expect(throws: FileReadError.self) { try BoundedFile.read(path: path, limit: 99) }
    }

    @Test func stationSecretsCannotPushTheSessionSecretsOut() {
        let registry = SecretRegistry()
        registry.register("the-password", kind: .credential)
        registry.register("csrf-token-1", kind: .session)
        for i in 0..<1000 { registry.register("sip-\(i)-xxxx", kind: .station) }
        #expect(registry.all.contains("the-password") && registry.all.contains("csrf-token-1"))
        #expect(registry.all.count <= 3 * 64)
    }
}

@Suite struct LoginResponseTests {
    @Test func headerAndPathValuesFromTheServerAreChecked() {
        #expect(ICWSClient.isHeaderSafe("abcDEF0123-_=+/"))
        #expect(!ICWSClient.isHeaderSafe("tok\r\nX-Evil: 1"))
        #expect(!ICWSClient.isHeaderSafe("tök"))
        #expect(ICWSClient.isSafeSessionId("1000001"))
        for bad in ["..", "a/b", "a?b", "a b", "a%2fb", String(repeating: "1", count: 300)] {
            #expect(!ICWSClient.isSafeSessionId(bad), "\(bad)")
        }
    }

    @Test func jsonValueCountIsBounded() {
        let many = "[" + Array(repeating: "[]", count: JSONValue.maxValues).joined(separator: ",") + "]"
        #expect(throws: JSONParseError.self) { try JSONValue.parse(many) }
        #expect((try? JSONValue.parse("[" + Array(repeating: "1", count: 100_000).joined(separator: ",") + "]")) != nil)
    }
}
