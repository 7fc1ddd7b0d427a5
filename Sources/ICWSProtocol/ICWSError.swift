/// Everything that can go wrong talking to ICWS, as one typed error.
///
/// Server errors carry the decoded ICWS error body (`errorId`, `message`,
/// `errorCode`, `propertyName`); nothing secret is ever put in one.
public struct ICWSError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The server answered with an HTTP error status.
        case server(status: Int)
        /// Could not reach the server or the connection broke.
        case transport
        /// No answer within the request timeout.
        case timeout
        /// The server answered something that is not ICWS.
        case invalidResponse
        /// There is no session to send the request on.
        case notConnected
        /// The server reported a failure in a message rather than an HTTP
        /// status: an `asyncOperationCompletedMessage`'s or a subscription
        /// state's `error`.
        case reported
    }

    public var kind: Kind
    public var errorId: String?
    public var message: String
    public var errorCode: Int64?
    public var propertyName: String?
    /// The parsed `WWW-Authenticate: ICWS ...` challenge of a 401.
    public var challenge: AuthChallenge?
    /// `alternateHostList` of a 503.
    public var alternateHosts: [String]
    /// A 503's or 429's `Retry-After`, as a wait from now (see `RetryAfter`).
    public var retryAfter: Duration?

    public init(
        kind: Kind, errorId: String? = nil, message: String, errorCode: Int64? = nil, propertyName: String? = nil,
        challenge: AuthChallenge? = nil, alternateHosts: [String] = []
    ) {
        self.kind = kind
        self.errorId = errorId
        self.message = message
        self.errorCode = errorCode
        self.propertyName = propertyName
        self.challenge = challenge
        self.alternateHosts = alternateHosts
    }

    public var status: Int? {
        if case .server(let s) = kind { return s }
        return nil
    }

    /// A short reason for `LastError` and `STATUS=`: the errorId when there is one.
    public var shortReason: String {
        if let errorId, !errorId.isEmpty { return errorId }
        switch kind {
        case .server(let s): return "HTTP \(s)"
        case .transport: return "transport error: \(message)"
        case .timeout: return "timeout: \(message)"
        case .invalidResponse: return "invalid response: \(message)"
        case .notConnected: return "not connected"
        case .reported: return message.isEmpty ? "error" : message
        }
    }

    /// "errorId: message", or whichever of the two the server sent, for
    /// D-Bus errors: what a caller needs to tell one server error from another.
    public var serverText: String {
        switch (errorId ?? "", message) {
        case ("", let m): return m
        case (let id, ""): return id
        case (let id, let m): return "\(id): \(m)"
        }
    }

    /// `serverText` after the HTTP status when there was one ("HTTP 500
    /// error.x: text"): the text of every D-Bus error the server caused.
    public var httpText: String {
        if case .server(let status) = kind { return "HTTP \(status) \(serverText)" }
        return serverText
    }

    public var description: String {
        var s: String
        switch kind {
        case .server(let status): s = "ICWS HTTP \(status)"
        case .transport: s = "transport error"
        case .timeout: s = "timeout"
        case .invalidResponse: s = "invalid response"
        case .notConnected: s = "not connected"
        case .reported: s = "ICWS reported an error"
        }
        if let errorId { s += " \(errorId)" }
        if !message.isEmpty { s += ": \(message)" }
        if let propertyName { s += " (property \(propertyName))" }
        return s
    }

    /// Decodes the common ICWS error body; anything unreadable still gives an error naming the status.
    public static func fromResponse(status: Int, body: [UInt8], wwwAuthenticate: [String], retryAfter: String? = nil, now: Int64? = nil) -> ICWSError {
        var error = ICWSError(kind: .server(status: status), message: "")
        if status == 503 || status == 429, let retryAfter { error.retryAfter = RetryAfter.parse(retryAfter, now: now) }
        if let json = try? JSONValue.parse(body), case .object = json {
            error.read(body: json)
            if let hosts = json["alternateHostList"]?.arrayValue {
                error.alternateHosts = hosts.prefix(32).compactMap(\.stringValue).filter { !$0.isEmpty }
            }
        }
        if error.errorId == nil, error.message.isEmpty { error.message = "HTTP \(status), no ICWS error in the body" }
        if status == 401 {
            error.challenge = wwwAuthenticate.lazy.compactMap { AuthChallenge.parse(header: $0) }.first
        }
        return error
    }

    /// The error an ICWS message reports in its `error` member (an
    /// `asyncOperationCompletedMessage`, a subscription state): nil when it
    /// has none (absent or null), else an error with what it names. A value
    /// that is not an object (`true`, a string) is still an error.
    public static func reported(_ json: JSONValue?) -> ICWSError? {
        guard let json, !json.isNull else { return nil }
        var error = ICWSError(kind: .reported, message: "")
        switch json {
        case .object: error.read(body: json)
        case .string(let text): error.message = text.singleLine(maxBytes: 1024)
        default: break
        }
        if error.errorId == nil, error.message.isEmpty { error.message = "the server reported an error without a text" }
        return error
    }

    /// Reads `errorId`, `message`, `errorCode` and `propertyName` of an
    /// ICWS error object. Server text goes into LastError, D-Bus errors,
    /// logs and STATUS=: one short line each. An id or code sent as a number
    /// is kept as its text; any other type is left out.
    mutating func read(body json: JSONValue) {
        func text(_ key: String, maxBytes: Int) -> String? {
            switch json[key] {
            case .string(let s)?: return s.isEmpty ? nil : s.singleLine(maxBytes: maxBytes)
            case .int(let i)?: return String(i)
            default: return nil
            }
        }
        errorId = text("errorId", maxBytes: 256)
        if let m = text("message", maxBytes: 1024) { message = m }
        errorCode = json["errorCode"]?.intValue
        propertyName = text("propertyName", maxBytes: 256)
    }
}
