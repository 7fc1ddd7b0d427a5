import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The session as the server created it. The CSRF token and the cookie are
/// secrets: they never reach a log, a signal or an error.
public struct ICWSSession: Sendable {
    public var base: ServerURL
    public var sessionId: String
    public var csrfToken: Secret
    /// The `Cookie` header value built from the login's `Set-Cookie` headers.
    public var cookie: Secret
    public var userId: String
    public var userDisplayName: String
    public var icServer: String?
    /// `featureId` → version.
    public var features: [String: Int]
    public var alternateHosts: [String]

    public func featureVersion(_ id: String) -> Int { features[id] ?? 0 }
}

public enum MessagingMode: String, Sendable, CaseIterable {
    case auto, sse, poll
}

/// CA certificates trusted beside the system store: the contents of a
/// `ca-file`, read once when the configuration is read.
public struct TrustRoots: Sendable, Equatable {
    let certificates: [NIOSSLCertificate]

    /// The certificates in `pem`, the contents of the file `name`.
    public static func load(pem: [UInt8], name: String) throws(CAFileError) -> TrustRoots {
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMBytes(pem) } catch {
            throw CAFileError(description: "\(name) is not a PEM certificate file (\(error))")
        }
        guard !certificates.isEmpty else { throw CAFileError(description: "\(name) holds no PEM certificate") }
        return TrustRoots(certificates: certificates)
    }
}

/// HTTP settings of the ICWS client.
public struct ICWSClientConfiguration: Sendable {
    /// Extra CA certificates trusted beside the system store.
    public var trustRoots: TrustRoots?
    public var requestTimeout: Duration
    public var connectTimeout: Duration
    public var language: String
    public var applicationName: String
    /// Largest response body read for a normal call.
    public var maxBodyBytes: Int

    public init(
        trustRoots: TrustRoots? = nil, requestTimeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(10),
        language: String = "en-us", applicationName: String = "icws-bridge", maxBodyBytes: Int = 64 << 20
    ) {
        self.trustRoots = trustRoots
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.language = language
        self.applicationName = applicationName
        self.maxBodyBytes = maxBodyBytes
    }
}

extension Duration {
    var timeAmount: TimeAmount {
        let (s, atto) = components
        return .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }

    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

/// What is wrong with a `ca-file`.
public struct CAFileError: Error, CustomStringConvertible {
    public var description: String
}

/// The ICWS REST calls over AsyncHTTPClient.
public final class ICWSClient: Sendable {
    /// The connection pool; replaced by `freshConnections()`.
    private let pool: Mutex<HTTPClient>
    var http: HTTPClient { pool.withLock { $0 } }
    private let httpConfiguration: HTTPClient.Configuration
    let logger: Logger
    static let mediaType = "application/vnd.inin.icws+JSON"

    private struct Settings {
        var configuration: ICWSClientConfiguration
        var tls: TLSConfiguration
    }
    /// Changed by a reload; every request reads it when it starts.
    private let settings: Mutex<Settings>

    public var configuration: ICWSClientConfiguration { settings.withLock { $0.configuration } }

    public init(configuration: ICWSClientConfiguration, logger: Logger) {
        self.logger = logger
        let tls = Self.tlsConfiguration(configuration.trustRoots)
        settings = Mutex(Settings(configuration: configuration, tls: tls))
        var config = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: configuration.connectTimeout.timeAmount, read: nil))
        config.connectionPool.idleTimeout = .seconds(30)
        // A connection that cannot be made fails the request at once: the
        // supervisor has its own backoff (AsyncHTTPClient would otherwise retry
        // quietly until the connect timeout, 10 s per attempt).
        config.connectionPool.retryConnectionEstablishment = false
        config.httpVersion = .http1Only
        httpConfiguration = config
        pool = Mutex(HTTPClient(eventLoopGroupProvider: .singleton, configuration: config))
    }

    /// Drops every pooled connection: requests from now on open new ones, and
    /// those under way on the old ones (a message stream) fail at once. After a
    /// suspend or a network change the old connections may be dead without
    /// knowing it.
    public func freshConnections() {
        let fresh = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        let old = pool.withLock { p in
            defer { p = fresh }
            return p
        }
        Task { try? await old.shutdown() }
    }

    /// Applies a reloaded configuration to the requests that start from now
    /// on (new connections trust the new CA certificates; open ones stay as
    /// they are). The connect timeout stays as it was at start.
    public func update(configuration new: ICWSClientConfiguration) {
        settings.withLock { current in
            let tls = new.trustRoots == current.configuration.trustRoots ? current.tls : Self.tlsConfiguration(new.trustRoots)
            current = Settings(configuration: new, tls: tls)
        }
    }

    /// The system trust store plus `roots`.
    static func tlsConfiguration(_ roots: TrustRoots?) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let roots { tls.additionalTrustRoots = [.certificates(roots.certificates)] }
        return tls
    }

    /// The request with the current TLS settings, and the settings it goes out with.
    private func prepared(_ request: HTTPClientRequest) -> (HTTPClientRequest, ICWSClientConfiguration) {
        let current = settings.withLock { $0 }
        var request = request
        request.tlsConfiguration = current.tls
        return (request, current.configuration)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: Login and logout

    /// `POST {base}/icws/connection?include=features,effective-station`.
    public func login(base: ServerURL, userId: String, password: Secret) async throws(ICWSError) -> ICWSSession {
        let body: JSONValue = .object([
            ("__type", "urn:inin.com:connection:icAuthConnectionRequestSettings"),
            ("applicationName", .string(configuration.applicationName)),
            ("userID", .string(userId)),
            ("password", .string(password.value)),
        ])
        var request = HTTPClientRequest(url: base.url("/icws/connection?include=features,effective-station"))
        request.method = .POST
        request.headers.add(name: "Accept-Language", value: configuration.language)
        request.headers.add(name: "Accept", value: Self.mediaType)
        request.headers.add(name: "Content-Type", value: Self.mediaType + ";charset=utf-8")
        request.body = .bytes(ByteBuffer(string: body.serialized()))
        let (status, headers, bytes) = try await send(request)
        guard status == 201 || status == 200 else {
            throw ICWSError.fromResponse(
                status: status, body: bytes, wwwAuthenticate: headers["www-authenticate"], retryAfter: headers.first(name: "retry-after"))
        }
        guard let json = try? JSONValue.parse(bytes), case .object = json else {
            throw ICWSError(kind: .invalidResponse, message: "login response is not a JSON object")
        }
        guard let sessionId = headers.first(name: "ININ-ICWS-Session-ID") ?? json["sessionId"]?.stringValue,
            !sessionId.isEmpty
        else { throw ICWSError(kind: .invalidResponse, message: "login response has no sessionId") }
        guard let csrf = headers.first(name: "ININ-ICWS-CSRF-Token") ?? json["csrfToken"]?.stringValue, !csrf.isEmpty
        else { throw ICWSError(kind: .invalidResponse, message: "login response has no csrfToken") }
        let pairs = headers["set-cookie"].prefix(32).compactMap { line -> String? in
            let pair = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces } ?? ""
            return pair.contains("=") ? pair : nil
        }
        // Each cookie value is a secret of its own: a log line may show one alone.
        for pair in pairs {
            if let eq = pair.firstIndex(of: "=") { SecretRegistry.shared.register(String(pair[pair.index(after: eq)...]), kind: .session) }
        }
        let cookie = pairs.joined(separator: "; ")
        guard Self.isHeaderSafe(csrf), Self.isHeaderSafe(cookie), cookie.utf8.count <= 16 * 1024, csrf.utf8.count <= 4096 else {
            throw ICWSError(kind: .invalidResponse, message: "login response has a CSRF token or cookie that an HTTP header cannot carry")
        }
        guard Self.isSafeSessionId(sessionId) else {
            throw ICWSError(kind: .invalidResponse, message: "login response has a sessionId that is not a URL path segment")
        }
        var features: [String: Int] = [:]
        for f in json["features"]?.arrayValue ?? [] {
            if let id = f["featureId"]?.stringValue, let v = f["version"]?.intValue { features[id] = Int(v) }
        }
        return ICWSSession(
            base: base, sessionId: sessionId, csrfToken: Secret(csrf, kind: .session), cookie: Secret(cookie, kind: .session),
            userId: json["userID"]?.stringValue ?? userId,
            userDisplayName: json["userDisplayName"]?.stringValue ?? json["userID"]?.stringValue ?? userId,
            icServer: json["icServer"]?.stringValue, features: features,
            alternateHosts: (json["alternateHostList"]?.arrayValue ?? []).compactMap(\.stringValue).filter { !$0.isEmpty })
    }

    /// `DELETE /icws/{sessionId}/connection`.
    public func logout(_ session: ICWSSession) async throws(ICWSError) {
        _ = try await call(session, .logout)
    }

    // MARK: Session calls

    /// One request on the session (built in `ICWSRequest`); answers the
    /// parsed body (nil when empty). Statuses outside its `accept` become an `ICWSError`.
    @discardableResult
    public func call(_ session: ICWSSession, _ r: ICWSRequest) async throws(ICWSError) -> JSONValue? {
        try await call(session, r.method.http, r.path, body: r.body, accept: r.accept)
    }

    private func call(
        _ session: ICWSSession, _ method: HTTPMethod, _ path: String, body: JSONValue?, accept: Set<Int>
    ) async throws(ICWSError) -> JSONValue? {
        var request = HTTPClientRequest(url: session.base.url("/icws/\(session.sessionId)\(path)"))
        request.method = method
        addSessionHeaders(&request, session)
        request.headers.add(name: "Accept", value: Self.mediaType)
        if let body {
            request.headers.add(name: "Content-Type", value: Self.mediaType + ";charset=utf-8")
            request.body = .bytes(ByteBuffer(string: body.serialized()))
        }
        let (status, headers, bytes) = try await send(request)
        guard accept.contains(status) else {
            throw ICWSError.fromResponse(
                status: status, body: bytes, wwwAuthenticate: headers["www-authenticate"], retryAfter: headers.first(name: "retry-after"))
        }
        if bytes.isEmpty { return nil }
        return try? JSONValue.parse(bytes)
    }

    /// Printable ASCII without CR or LF: what the server hands back must not
    /// add a header to our requests.
    static func isHeaderSafe(_ s: String) -> Bool { s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } }

    /// The session id goes into every request path: letters, digits, `-`, `_`, `.` only.
    static func isSafeSessionId(_ s: String) -> Bool {
        s.utf8.count <= 256 && s != "." && s != ".."
            && s.utf8.allSatisfy { b in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
                    || b == UInt8(ascii: ".")
            }
    }

    func addSessionHeaders(_ request: inout HTTPClientRequest, _ session: ICWSSession) {
        request.headers.add(name: "Accept-Language", value: configuration.language)
        request.headers.add(name: "ININ-ICWS-CSRF-Token", value: session.csrfToken.value)
        if !session.cookie.value.isEmpty { request.headers.add(name: "Cookie", value: session.cookie.value) }
    }

    private func send(_ request: HTTPClientRequest) async throws(ICWSError) -> (Int, HTTPHeaders, [UInt8]) {
        let (request, configuration) = prepared(request)
        do {
            let response = try await http.execute(request, timeout: configuration.requestTimeout.timeAmount, logger: logger)
            var body = try await response.body.collect(upTo: configuration.maxBodyBytes)
            return (Int(response.status.code), response.headers, body.readBytes(length: body.readableBytes) ?? [])
        } catch {
            throw Self.mapTransport(error)
        }
    }

    static func mapTransport(_ error: any Error) -> ICWSError {
        if let e = error as? ICWSError { return e }
        if let e = error as? HTTPClientError {
            if e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
                return ICWSError(kind: .timeout, message: "no answer in time")
            }
            return ICWSError(kind: .transport, message: String(describing: e))
        }
        if error is CancellationError { return ICWSError(kind: .transport, message: "cancelled") }
        if let tls = tlsProblem(error) { return ICWSError(kind: .transport, message: tls) }
        return ICWSError(kind: .transport, message: String(describing: error))
    }

    /// A short, clear message for a failed TLS handshake (NIOSSL's own names
    /// BoringSSL's source files), or nil when `error` is not one.
    static func tlsProblem(_ error: any Error) -> String? {
        let text = String(describing: error)
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS: the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED); put its CA in ca-file"
        }
        if text.contains("failedToValidateHostname") || text.contains("unableToValidateCertificate") {
            return "TLS: the server's certificate does not name the host in the server URL"
        }
        guard error is NIOSSLError || text.contains("handshakeFailed") else { return nil }
        let reasons = text.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") })
            .compactMap { $0.split(separator: ":").last.map(String.init) }
            .filter { $0.count > 3 && $0.allSatisfy { $0.isUppercase || $0 == "_" || $0.isNumber } && $0.contains("_") }
        return "TLS handshake failed" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: ", ")))")
    }

    // MARK: Station and subscriptions

    public func putStation(_ session: ICWSSession, _ settings: StationSettings) async throws(ICWSError) {
        try await call(session, .connectStation(settings))
    }

    public func getStation(_ session: ICWSSession) async throws(ICWSError) -> StationInformation {
        guard let json = try await call(session, .station) else {
            throw ICWSError(kind: .invalidResponse, message: "empty station information")
        }
        do { return try StationInformation.decode(json, field: "station") } catch {
            throw ICWSError(kind: .invalidResponse, message: error.description)
        }
    }

    public func deleteStation(_ session: ICWSSession) async throws(ICWSError) {
        try await call(session, .disconnectStation)
    }

    /// `GET /icws/{sessionId}/connection`: (connectionState, reason, shouldReconnect).
    public func connectionState(_ session: ICWSSession) async throws(ICWSError) -> (state: ConnectionState, reason: String, shouldReconnect: Bool?) {
        guard let json = try await call(session, .connectionState) else {
            throw ICWSError(kind: .invalidResponse, message: "empty connection state")
        }
        var r = FieldReader(json, prefix: "")
        do throws(MessageDecodeError) {
            return (
                try r.requiredEnum("connectionState"), try r.optionalString("reason") ?? "",
                try r.optionalBool("shouldReconnect")
            )
        } catch { throw ICWSError(kind: .invalidResponse, message: error.description) }
    }

    /// `s` percent-encoded for one path segment (unreserved characters stay).
    public static func pathComponent(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    // MARK: Messaging

    /// One short poll: the decoded messages, in order; malformed ones as errors.
    public func poll(_ session: ICWSSession) async throws(ICWSError) -> [Result<ICWSMessage, MessageDecodeError>] {
        guard let json = try await call(session, .messages) else { return [] }
        guard case .array(let items) = json else {
            throw ICWSError(kind: .invalidResponse, message: "poll response is not a JSON array")
        }
        return items.map { item in
            do throws(MessageDecodeError) { return .success(try ICWSMessage.decode(item)) } catch { return .failure(error) }
        }
    }

    /// Opens the server-sent event stream and feeds its events and keep-alives
    /// to `handler`, all those of one read at once, in order, until the stream
    /// ends (returns normally), breaks (throws), or nothing at all arrives for
    /// `stallTimeout` (throws a timeout).
    public func streamEvents(
        _ session: ICWSSession, stallTimeout: Duration, maxEventBytes: Int,
        handler: @escaping @Sendable ([SSEParser.Output]) async -> Void
    ) async throws(ICWSError) {
        var request = HTTPClientRequest(url: session.base.url("/icws/\(session.sessionId)/messaging/messages"))
        request.method = .GET
        addSessionHeaders(&request, session)
        request.headers.add(name: "Accept", value: "text/event-stream")
        request.headers.add(name: "Cache-Control", value: "no-cache")
        // The last byte from the server, and whether the handler holds the
        // reading back (the bus has no room): the stall clock measures the
        // server's silence, not our own pause.
        let activity = LockedValue((last: ContinuousClock.now, handling: false))
        let (streamRequest, configuration) = prepared(request)
        let http = self.http
        let logger = self.logger
        let connectTimeout = configuration.requestTimeout
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let response = try await http.execute(streamRequest, deadline: .now() + connectTimeout.timeAmount, logger: logger)
                    guard response.status.code == 200 else {
                        var body = try await response.body.collect(upTo: 1 << 20)
                        throw ICWSError.fromResponse(
                            status: Int(response.status.code), body: body.readBytes(length: body.readableBytes) ?? [],
                            wwwAuthenticate: response.headers["www-authenticate"])
                    }
                    var parser = SSEParser(maxEventBytes: maxEventBytes)
                    var outputs: [SSEParser.Output] = []
                    for try await chunk in response.body {
                        try chunk.withUnsafeReadableBytes { raw in
                            try parser.feed(raw) { outputs.append($0) }
                        }
                        activity.set((.now, !outputs.isEmpty))
                        if !outputs.isEmpty {
                            await handler(outputs)
                            activity.set((.now, false))
                            outputs.removeAll(keepingCapacity: true)
                        }
                    }
                }
                group.addTask {
                    // One deadline, moved on by every byte: it wakes once per
                    // stall-timeout at most, not on a tick.
                    while true {
                        let (last, handling) = activity.get()
                        let due = last + stallTimeout
                        if ContinuousClock.now >= due, handling {
                            // Not reading now: the server cannot be heard; look again later.
                            try await loopSleep(until: .now + stallTimeout)
                            continue
                        }
                        if ContinuousClock.now >= due {
                            let idle = ContinuousClock.now - last
                            throw ICWSError(kind: .timeout, message: "message stream stalled for \(Int(idle.seconds)) s")
                        }
                        try await loopSleep(until: due)
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        } catch let e as SSEParseError {
            throw ICWSError(kind: .invalidResponse, message: e.description)
        } catch {
            throw Self.mapTransport(error)
        }
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

/// A value behind a lock that closures can share (a `Mutex` cannot be captured).
public final class LockedValue<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func get() -> Value { mutex.withLock { $0 } }
    public func set(_ value: Value) { mutex.withLock { $0 = value } }
    @discardableResult
    public func update<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// The HTTP methods of session requests made through the supervisor.
public enum RequestMethod: Sendable {
    case get, post, put, delete

    var http: HTTPMethod {
        switch self {
        case .get: return .GET
        case .post: return .POST
        case .put: return .PUT
        case .delete: return .DELETE
        }
    }
}
