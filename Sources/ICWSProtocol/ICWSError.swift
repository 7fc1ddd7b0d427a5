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
        }
    }

    public var description: String {
        var s: String
        switch kind {
        case .server(let status): s = "ICWS HTTP \(status)"
        case .transport: s = "transport error"
        case .timeout: s = "timeout"
        case .invalidResponse: s = "invalid response"
        case .notConnected: s = "not connected"
        }
        if let errorId { s += " \(errorId)" }
        if !message.isEmpty { s += ": \(message)" }
        if let propertyName { s += " (property \(propertyName))" }
        return s
    }

    /// Decodes the common ICWS error body; anything unreadable still gives an error naming the status.
    public static func fromResponse(status: Int, body: [UInt8], wwwAuthenticate: [String]) -> ICWSError {
        var error = ICWSError(kind: .server(status: status), message: "HTTP \(status)")
        if let json = try? JSONValue.parse(body), case .object = json {
            // Server text goes into LastError, D-Bus errors, logs and STATUS=: one short line.
            error.errorId = json["errorId"]?.stringValue?.singleLine(maxBytes: 256)
            if let m = json["message"]?.stringValue { error.message = m.singleLine(maxBytes: 1024) }
            error.errorCode = json["errorCode"]?.intValue
            error.propertyName = json["propertyName"]?.stringValue?.singleLine(maxBytes: 256)
            if let hosts = json["alternateHostList"]?.arrayValue {
                error.alternateHosts = hosts.prefix(32).compactMap(\.stringValue).filter { !$0.isEmpty }
            }
        }
        if status == 401 {
            error.challenge = wwwAuthenticate.lazy.compactMap { AuthChallenge.parse(header: $0) }.first
        }
        return error
    }
}
