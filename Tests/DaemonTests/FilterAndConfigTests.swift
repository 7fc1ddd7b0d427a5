import Daemon
import Foundation
import ICWS
import Logging
import Testing
import TestSupport

/// The log filter and the configuration's ranges (docs/boundaries.md).
@Suite struct RedactorTests {
    let redactor = Redactor(secrets: ["s3cr3t-token", "Pa55word"])

    @Test func knownSecretsGoAsTextAndAsHex() {
        #expect(redactor.redact("token s3cr3t-token here") == "token <redacted> here")
        let hex = "s3cr3t-token".utf8.map { String(format: "%02x", $0) }
        #expect(!redactor.redact("[" + hex.joined(separator: " ") + "](12 bytes)").contains(hex.joined(separator: " ")))
        #expect(!redactor.redact(hex.joined()).contains(hex.joined()))
    }

    @Test func namedValuesGoEvenWhenUnknown() {
        let head = #"HTTPResponseHead { headers: [("ININ-ICWS-CSRF-Token", "abc123"), ("Set-Cookie", "icws_1=zzz; Path=/"), ("Content-Type", "x")] }"#
        let out = redactor.redact(head)
        #expect(!out.contains("abc123") && !out.contains("zzz"), "\(out)")
        #expect(out.contains("Content-Type\", \"x"), "\(out)")
        #expect(!redactor.redact(#"{"csrfToken":"t0k","password": "pw"}"#).contains("t0k"))
        #expect(!redactor.redact(#"{"csrfToken":"t0k","password": "pw"}"#).contains("\"pw\""))
        #expect(!redactor.redact("Cookie: a=1; b=2\nnext").contains("a=1"))
        #expect(redactor.redact("Cookie: a=1\nnext").hasSuffix("\\nnext"), "the next line survives (escaped)")
        #expect(redactor.redact("no password: use LoadCredential") == "no password: use LoadCredential", "prose is left alone")
    }

    @Test func bodyDumpsAreNotLogged() {
        #expect(redactor.redact("body([7b 22 61 22 ... 7d](120 bytes))") == "body([120 bytes not logged])")
    }

    @Test func linesCannotBeForgedOrFlooded() {
        #expect(redactor.redact("a\nFAKE line\r") == "a\\nFAKE line\\r")
        #expect(redactor.redact(String(repeating: "x", count: 100_000)).utf8.count < 17_000)
    }

    @Test func theHandlerFiltersMessageAndMetadata() {
        let capture = LogCapture()
        let registry = SecretRegistry()
        registry.register("live-csrf-1234", kind: .session)
        let logger = capture.logger { RedactingLogHandler(wrapping: $0, registry: registry) }
        logger.trace("head live-csrf-1234", metadata: ["ahc-http-part": "\(["x": "live-csrf-1234"])"])
        #expect(capture.all.count == 1 && !capture.text.contains("live-csrf-1234"), "\(capture.all)")
    }
}

@Suite struct ConfigurationLimitTests {
    func parse(_ extra: String) -> Result<DaemonConfiguration, ConfigError> {
        Result { () throws(ConfigError) in try DaemonConfiguration.parse("server = https://cic\nuser = a\n" + extra, file: "f") }
    }

    @Test func durationsAreRangeChecked() {
        for (line, key) in [
            ("request-timeout = 10000000000", "request-timeout"), ("request-timeout = 1e300", "request-timeout"),
            ("poll-interval = 10ms", "poll-interval"), ("stall-timeout = 0", "stall-timeout"), ("backoff-cap = 2d", "backoff-cap"),
            ("backoff-initial = inf", "backoff-initial"), ("backoff-reset-after = -1", "backoff-reset-after"),
        ] {
            guard case .failure(let e) = parse(line) else {
                Issue.record("\(line) accepted")
                continue
            }
            #expect(e.key == key && e.line == 3, "\(line): \(e)")
        }
        #expect((try? parse("request-timeout = 1h").get())?.requestTimeout == .seconds(3600))
        #expect((try? parse("poll-interval = 100ms").get())?.pollInterval == .milliseconds(100))
    }

    @Test func controlCharactersAndLineEndings() {
        guard case .failure(let e) = parse("language = en\u{1b}[31m") else {
            Issue.record("control character accepted")
            return
        }
        #expect(e.key == "language")
        let crlf = Result { () throws(ConfigError) in try DaemonConfiguration.parse("server = https://cic\r\nuser = a\r\nlanguage = de\r\n", file: "f") }
        #expect((try? crlf.get())?.language == "de")
        guard case .failure(let m) = parse("station-type = workstation\nstation-workstation = 7001\nstation-connection-mode = 3") else {
            Issue.record("mode 3 accepted")
            return
        }
        #expect(m.key == "station-connection-mode")
    }
}
