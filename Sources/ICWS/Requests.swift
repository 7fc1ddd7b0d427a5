import ICWSProtocol

/// Every request the daemon makes within an ICWS session, as a value built in
/// this one place: its method, its path below `/icws/{sessionId}`, its body
/// and the statuses that mean success. The client sends them
/// (`ICWSClient.call(_:_:)`); the supervisor, the session machine's effects and
/// the bridge's methods only choose which.
public struct ICWSRequest: Sendable {
    public let method: RequestMethod
    public let path: String
    public let body: JSONValue?
    public let accept: Set<Int>

    init(_ method: RequestMethod, _ path: String, body: JSONValue? = nil, accept: Set<Int>) {
        self.method = method
        self.path = path
        self.body = body
        self.accept = accept
    }

    // MARK: The session

    /// `DELETE /connection`: logs out (an ended session is as good).
    public static let logout = ICWSRequest(.delete, "/connection", accept: [200, 204, 404])
    /// `GET /connection`: the session's state, asked after a refused request.
    public static let connectionState = ICWSRequest(.get, "/connection", accept: [200])

    // MARK: The station

    public static func connectStation(_ settings: StationSettings) -> ICWSRequest {
        ICWSRequest(.put, "/connection/station", body: settings.json, accept: [200, 201, 204])
    }
    public static let station = ICWSRequest(.get, "/connection/station", accept: [200])
    public static let disconnectStation = ICWSRequest(.delete, "/connection/station", accept: [200, 204])

    // MARK: Messaging

    /// `GET /messaging/messages` (short polling).
    public static let messages = ICWSRequest(.get, "/messaging/messages", accept: [200])

    /// `PUT /messaging/subscriptions/{path}`: makes (or re-makes) a subscription.
    public static func subscribe(_ path: String, body: JSONValue?) -> ICWSRequest {
        ICWSRequest(.put, "/messaging/subscriptions/\(path)", body: body, accept: [200, 201, 204])
    }

    /// `DELETE /messaging/subscriptions/{path}`: one that is gone already is as good.
    public static func unsubscribe(_ path: String) -> ICWSRequest {
        ICWSRequest(.delete, "/messaging/subscriptions/\(path)", accept: [200, 204, 404])
    }

    // MARK: Status

    /// `PUT /status/user-statuses/{userId}`: 202 with a `requestId` when the
    /// server completes it later (`asyncOperationCompletedMessage`).
    public static func setUserStatus(userId: String, statusId: String, notes: String? = nil, forwardNumber: String? = nil) -> ICWSRequest {
        var body: [(String, JSONValue)] = [("statusId", .string(statusId))]
        if let notes { body.append(("notes", .string(notes))) }
        if let forwardNumber { body.append(("forwardNumber", .string(forwardNumber))) }
        return ICWSRequest(.put, "/status/user-statuses/\(ICWSClient.pathComponent(userId))", body: .object(body), accept: [200, 201, 202, 204])
    }

    // MARK: Interactions

    /// What a call-control request does to one interaction.
    public enum InteractionAction: Sendable, Equatable {
        case pickup, disconnect, sendToVoicemail
        case hold(Bool), mute(Bool)
        case sendDigits(String)
        case blindTransfer(target: String)

        var path: String {
            switch self {
            case .pickup: return "pickup"
            case .disconnect: return "disconnect"
            case .sendToVoicemail: return "send-to-voicemail"
            case .hold: return "hold"
            case .mute: return "mute"
            case .sendDigits: return "send-digits"
            case .blindTransfer: return "blind-transfer"
            }
        }

        var body: JSONValue? {
            switch self {
            case .pickup, .disconnect, .sendToVoicemail: return nil
            case .hold(let on), .mute(let on): return .object([("on", .bool(on))])
            case .sendDigits(let digits): return .object([("dtmfDigits", .string(digits))])
            case .blindTransfer(let target): return .object([("target", .string(target))])
            }
        }
    }

    /// `POST /interactions/{id}/{action}`.
    public static func interaction(_ id: String, _ action: InteractionAction) -> ICWSRequest {
        ICWSRequest(.post, "/interactions/\(ICWSClient.pathComponent(id))/\(action.path)", body: action.body, accept: [200, 201, 202, 204])
    }

    /// `POST /interactions`: places a call; the answer names the new interaction.
    public static func createCall(target: String, workgroup: String? = nil, attributes: [(String, String)]? = nil, accountCode: String? = nil) -> ICWSRequest {
        var body: [(String, JSONValue)] = [("__type", .string("urn:inin.com:interactions:createCallParameters")), ("target", .string(target))]
        if let workgroup { body.append(("workgroup", .string(workgroup))) }
        if let accountCode { body.append(("accountCodeId", .string(accountCode))) }
        if let attributes { body.append(("additionalAttributes", .object(attributes.map { ($0.0, .string($0.1)) }))) }
        return ICWSRequest(.post, "/interactions", body: .object(body), accept: [200, 201])
    }

    // MARK: After the call and around it (contract v1.2)

    /// `POST /interactions/{id}`: writes attributes (part two §B.5).
    public static func setAttributes(_ id: String, _ attributes: [(String, String)]) -> ICWSRequest {
        ICWSRequest(.post, "/interactions/\(ICWSClient.pathComponent(id))",
                    body: .object([("attributes", .object(attributes.map { ($0.0, .string($0.1)) }))]), accept: [200, 201, 202, 204])
    }

    /// `POST /interactions/{id}/wrap-up-assignments` (every field required; P3 A.3).
    public static func wrapUpAssignment(_ id: String, code: String, segmentId: Int, time: String, user: String) -> ICWSRequest {
        let body: JSONValue = .object([
            ("code", .string(code)), ("segmentId", .int(Int64(segmentId))), ("time", .string(time)), ("user", .string(user)),
            ("sourceInteractionId", .string(id)),
        ])
        return ICWSRequest(.post, "/interactions/\(ICWSClient.pathComponent(id))/wrap-up-assignments", body: body, accept: [200, 201, 202, 204])
    }

    /// `POST /interactions/{id}/consult` with a target: 201 with `{consultId, consultInteractionId}`.
    public static func consult(_ id: String, target: String) -> ICWSRequest {
        ICWSRequest(.post, "/interactions/\(ICWSClient.pathComponent(id))/consult", body: .object([("target", .string(target))]), accept: [200, 201])
    }

    /// Who the agent speaks to during a consult.
    public enum Audience: String, Sendable, CaseIterable {
        case caller, consult, both

        var json: JSONValue {
            .object([("originalParty", .bool(self != .consult)), ("consultedParty", .bool(self != .caller))])
        }
    }

    /// `POST /interactions/{id}/consult/{consultId}/change-audience`.
    public static func changeAudience(_ id: String, consultId: String, _ audience: Audience) -> ICWSRequest {
        ICWSRequest(.post, "/interactions/\(ICWSClient.pathComponent(id))/consult/\(ICWSClient.pathComponent(consultId))/change-audience",
                    body: .object([("audience", audience.json)]), accept: [200, 201, 202, 204])
    }

    /// `POST /interactions/{id}/consult/{consultId}/conclude`: completes the transfer.
    public static func concludeConsult(_ id: String, consultId: String) -> ICWSRequest {
        ICWSRequest(.post, "/interactions/\(ICWSClient.pathComponent(id))/consult/\(ICWSClient.pathComponent(consultId))/conclude", accept: [200, 201, 202, 204])
    }

    /// `DELETE /interactions/{id}/consult/{consultId}`: cancels the consult.
    public static func cancelConsult(_ id: String, consultId: String) -> ICWSRequest {
        ICWSRequest(.delete, "/interactions/\(ICWSClient.pathComponent(id))/consult/\(ICWSClient.pathComponent(consultId))", accept: [200, 202, 204])
    }

    /// A secure pause of the recording (P3 D.1).
    public enum SecurePause: Sendable, Equatable {
        case serverDefault, untilResumed, seconds(UInt32), resume

        var json: JSONValue {
            switch self {
            case .serverDefault: return .object([("securePauseType", .int(1))])
            case .untilResumed: return .object([("securePauseType", .int(2))])
            case .seconds(let n): return .object([("securePauseType", .int(3)), ("duration", .int(Int64(n)))])
            case .resume: return .object([("securePauseType", .int(4))])
            }
        }
    }

    /// `POST /interactions/{id}/secure-pause`.
    public static func securePause(_ id: String, _ pause: SecurePause) -> ICWSRequest {
        ICWSRequest(.post, "/interactions/\(ICWSClient.pathComponent(id))/secure-pause", body: pause.json, accept: [200, 201, 202, 204])
    }

    /// `POST /interactions/conferences`: 201 with `{conferenceId}`.
    public static func createConference(_ ids: [String]) -> ICWSRequest {
        ICWSRequest(.post, "/interactions/conferences", body: .object([("interactions", .array(ids.map { .string($0) }))]), accept: [200, 201])
    }

    /// `PUT /interactions/conferences/{conferenceId}`: adds parties.
    public static func addToConference(_ conferenceId: String, _ ids: [String]) -> ICWSRequest {
        ICWSRequest(.put, "/interactions/conferences/\(ICWSClient.pathComponent(conferenceId))",
                    body: .object([("interactions", .array(ids.map { .string($0) }))]), accept: [200, 201, 202, 204])
    }

    // MARK: Workgroups (contract v1.2)

    /// `GET /configuration/users/{userId}?select=workgroups`: the user's workgroups.
    public static func userWorkgroups(_ userId: String) -> ICWSRequest {
        ICWSRequest(.get, "/configuration/users/\(ICWSClient.pathComponent(userId))?select=workgroups", accept: [200])
    }

    /// `GET /configuration/workgroups/{id}?select=isWrapUpActive,wrapUpCodes,wrapUpTimeout`.
    public static func workgroupWrapUp(_ id: String) -> ICWSRequest {
        ICWSRequest(.get, "/configuration/workgroups/\(ICWSClient.pathComponent(id))?select=isWrapUpActive,wrapUpCodes,wrapUpTimeout", accept: [200])
    }

    /// `GET /configuration/wrap-up-codes?select=label`: every code's label.
    public static let wrapUpCodeLabels = ICWSRequest(.get, "/configuration/wrap-up-codes?select=label", accept: [200])

    /// `GET /activations/users/{userId}`: the user's activations.
    public static func userActivations(_ userId: String) -> ICWSRequest {
        ICWSRequest(.get, "/activations/users/\(ICWSClient.pathComponent(userId))", accept: [200])
    }

    /// `PUT /activations/users/{userId}` naming one workgroup.
    public static func setActivation(_ userId: String, workgroup: String, _ on: Bool) -> ICWSRequest {
        ICWSRequest(.put, "/activations/users/\(ICWSClient.pathComponent(userId))",
                    body: .object([("activations", .object([(workgroup, .bool(on))]))]), accept: [200, 201, 202, 204])
    }
}
