import Foundation
import HTTPTypes
import Hummingbird
import ICWSProtocol
import NIOCore

extension HTTPField.Name {
    static let csrfToken = HTTPField.Name("ININ-ICWS-CSRF-Token")!
    static let sessionIdHeader = HTTPField.Name("ININ-ICWS-Session-ID")!
    static let acceptLanguage = HTTPField.Name("Accept-Language")!
}

enum SessionCheck {
    case ok(SimSession)
    case refused(Response)
}

extension ICWSSimulator {
    static let jsonType = "application/vnd.inin.icws+JSON; charset=utf-8"

    func json(_ status: HTTPResponse.Status, _ body: JSONValue?, headers: HTTPFields = [:]) -> Response {
        var h = headers
        guard let body else { return Response(status: status, headers: h) }
        h[.contentType] = Self.jsonType
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: body.serialized())))
    }

    func icwsError(_ status: HTTPResponse.Status, _ errorId: String, _ message: String, property: String? = nil,
                   extra: [(String, JSONValue)] = [], headers: HTTPFields = [:]) -> Response {
        var members: [(String, JSONValue)] = [("errorId", .string(errorId)), ("message", .string(message))]
        if let property { members.append(("propertyName", .string(property))) }
        members.append(contentsOf: extra)
        return json(status, .object(members), headers: headers)
    }

    func handle(_ request: Request) async throws -> Response {
        var request = request
        let path = request.uri.path
        let host = request.head.authority ?? ""
        let bodyBuffer = try await request.collectBody(upTo: 16 << 20)
        let bodyBytes = Array(bodyBuffer.readableBytesView)
        let body = bodyBytes.isEmpty ? nil : try? JSONValue.parse(bodyBytes)
        let receivedAt = ContinuousClock.now
        let response = await route(request, path: path, host: host, body: body, rawBody: bodyBytes)
        let logged: JSONValue? = {
            // The log is for tests; the password is not kept in it.
            guard case .object(let m)? = body else { return body }
            return .object(m.map { $0.0 == "password" ? ($0.0, "<redacted>") : $0 })
        }()
        global.withLock {
            $0.requests.append(
                SimRequest(method: request.method.rawValue, path: path, host: host, body: logged, status: response.status.code, receivedAt: receivedAt))
            if $0.requests.count > 100_000 { $0.requests.removeFirst(50_000) }
        }
        return response
    }

    func route(_ request: Request, path: String, host: String, body: JSONValue?, rawBody: [UInt8]) async -> Response {
        if isStopped {
            return icwsError(.serviceUnavailable, "error.server.unavailable", "The simulator was stopped.", extra: [("alternateHostList", [])])
        }
        let parts = path.split(separator: "/").map(String.init)
        if parts.first == "sim" { return admin(request, parts: parts, body: body) }
        guard parts.first?.lowercased() == "icws", parts.count >= 2 else {
            return icwsError(.notFound, "error.request.notFound", "No such resource.")
        }
        if parts.count == 2, parts[1].lowercased() == "connection" {
            guard request.method == .post else {
                return icwsError(.methodNotAllowed, "error.request.accessDenied.httpMethodNotAllowed", "Method not allowed.")
            }
            return login(request, host: host, body: body, rawBody: rawBody)
        }
        let sessionId = parts[1]
        let rest = parts.dropFirst(2).joined(separator: "/")
        switch authenticate(request, sessionId: sessionId, rest: rest) {
        case .refused(let response): return response
        case .ok(let session): return await sessionRoute(request, session: session, rest: rest, body: body)
        }
    }

    // MARK: Login

    func login(_ request: Request, host: String, body: JSONValue?, rawBody: [UInt8]) -> Response {
        let hostname = Self.hostname(host)
        let refusal = global.withLock { g -> Response? in
            if let until = g.busyUntil, until > .now {
                var headers = HTTPFields()
                if let retryAfter = g.busyRetryAfter, let name = HTTPField.Name("Retry-After") { headers[name] = retryAfter }
                return icwsError(
                    .serviceUnavailable, "error.server.notAcceptingConnections", "This Session Manager is not currently accepting connections.",
                    extra: [("alternateHostList", [])], headers: headers)
            }
            if let until = g.refuseUntil, until > .now {
                return icwsError(.serviceUnavailable, "error.server.unavailable", "The server is unavailable.", extra: [("alternateHostList", [])])
            }
            if let u = g.unavailable, !u.acceptHosts.contains(hostname) {
                if let c = u.count {
                    if c <= 0 { return nil }
                    g.unavailable?.count = c - 1
                }
                return icwsError(
                    .serviceUnavailable, "error.server.notAcceptingConnections",
                    "This Session Manager is not currently accepting connections.",
                    extra: [("alternateHostList", .array(u.alternates.map { .string($0) }))])
            }
            return nil
        }
        if let refusal { return refusal }
        guard let language = request.headers[.acceptLanguage], !language.isEmpty else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "The Accept-Language header is required.", property: "Accept-Language")
        }
        guard let body, case .object = body else {
            return icwsError(.badRequest, "error.request.invalidRepresentation", "The request body is not valid JSON.")
        }
        guard body["__type"]?.stringValue == "urn:inin.com:connection:icAuthConnectionRequestSettings" else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Unsupported connection request type.", property: "__type")
        }
        for key in ["applicationName", "userID", "password"] where (body[key]?.stringValue ?? "").isEmpty {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property \(key) is missing.", property: key)
        }
        let user = body["userID"]?.stringValue ?? ""
        guard let expected = configuration.accounts[user], expected == body["password"]?.stringValue else {
            return json(
                .badRequest,
                ["errorId": "error.request.connection.authenticationFailure", "errorCode": -2_147_221_503, "message": "The authentication process failed."])
        }
        let session = global.withLock { g -> SimSession in
            g.nextSession += 1
            g.loginCount += 1
            let id = String(g.nextSession)
            let csrf = String(format: "%016llx%016llx", g.rng.next(), g.rng.next())
            let cookie = String(format: "%016llx-%08llx", g.rng.next(), g.rng.next() & 0xffff_ffff)
            let s = SimSession(id: id, csrf: csrf, cookieValue: cookie, userId: user, host: hostname)
            g.sessions[id] = s
            return s
        }
        var headers: HTTPFields = [:]
        headers[.sessionIdHeader] = session.id
        headers[.csrfToken] = session.csrf
        headers[.location] = "/icws/\(session.id)/connection"
        headers.append(HTTPField(name: .setCookie, value: "\(session.cookieName)=\(session.cookieValue); Path=/icws/\(session.id); HttpOnly"))
        let features: JSONValue = [
            ["featureId": "connection", "version": 15], ["featureId": "messaging", "version": .int(Int64(configuration.messagingVersion))],
            ["featureId": "interactions", "version": 14],
        ]
        let response: JSONValue = [
            "csrfToken": .string(session.csrf), "sessionId": .string(session.id),
            "alternateHostList": .array(configuration.alternateHosts.map { .string($0) }),
            "userID": .string(user), "userDisplayName": .string(user.capitalized), "icServer": "SIM",
            "features": features, "effectiveStation": nil,
        ]
        return json(.created, response, headers: headers)
    }

    static func hostname(_ authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[...close])
        }
        return String(authority.split(separator: ":").first ?? "")
    }

    // MARK: Session checks

    func challengeHeaders(location: String?) -> HTTPFields {
        var h: HTTPFields = [:]
        h[.wwwAuthenticate] = "ICWS realm=\"ICWS\" location=\"\(location ?? "/ICWS/connection")\""
        return h
    }

    func authenticate(_ request: Request, sessionId: String, rest: String) -> SessionCheck {
        let (session, expired) = global.withLock { ($0.sessions[sessionId], $0.expired[sessionId]) }
        if let expired {
            return .refused(
                icwsError(.unauthorized, "error.request.connection.authenticationFailure", "The session is not valid.",
                          extra: [("errorCode", -2_147_221_499)],
                          headers: expired.challenge ? challengeHeaders(location: expired.location) : [:]))
        }
        guard let session else {
            return .refused(
                icwsError(.unauthorized, "error.request.connection.authenticationFailure", "The session is not valid.",
                          extra: [("errorCode", 2)], headers: challengeHeaders(location: nil)))
        }
        let cookies = request.headers[values: .cookie].flatMap { $0.split(separator: ";") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard cookies.contains("\(session.cookieName)=\(session.cookieValue)") else {
            return .refused(
                icwsError(.unauthorized, "error.request.connection.authenticationFailure", "The session cookie is missing.",
                          extra: [("errorCode", 4)], headers: challengeHeaders(location: nil)))
        }
        // The message stream needs only the cookie (as a browser EventSource sends it).
        let isMessages = rest.lowercased() == "messaging/messages" && request.method == .get
        if !isMessages, request.headers[.csrfToken] != session.csrf {
            return .refused(
                icwsError(.unauthorized, "error.request.connection.authenticationFailure", "The CSRF token is missing or wrong.",
                          extra: [("errorCode", 2)], headers: challengeHeaders(location: nil)))
        }
        let (alive, down) = session.mutable.withLock { ($0.alive, $0.downState) }
        if !alive {
            if rest.lowercased() == "connection", request.method == .get, let down {
                var body: [(String, JSONValue)] = [("connectionState", .enumValue(ConnectionState.down)), ("reason", .string(down.reason))]
                if let r = down.shouldReconnect { body.append(("shouldReconnect", .bool(r))) }
                return .refused(json(.ok, .object(body)))
            }
            return .refused(
                icwsError(.unauthorized, "error.request.connection.authenticationFailure", "The session is not valid.",
                          extra: [("errorCode", 2)], headers: challengeHeaders(location: nil)))
        }
        return .ok(session)
    }

    // MARK: Session resources

    func sessionRoute(_ request: Request, session: SimSession, rest: String, body: JSONValue?) async -> Response {
        let method = request.method
        if let failure = injectedFailure(method: method.rawValue, rest: rest) { return failure }
        switch (method, rest.lowercased()) {
        case (.get, "connection"):
            return json(.ok, ["connectionState": .enumValue(ConnectionState.up), "reason": ""])
        case (.delete, "connection"):
            global.withLock { _ = $0.sessions.removeValue(forKey: session.id) }
            session.end()
            return Response(status: .ok)
        case (.put, "connection/station"):
            let delay = stationDelay
            if delay > .zero { try? await Task.sleep(for: delay) }
            return putStation(session, body: body)
        case (.get, "connection/station"):
            guard let station = session.mutable.withLock({ $0.station }) else {
                return icwsError(.notFound, "error.request.notFound", "No station connection.")
            }
            return json(.ok, stationInfo(station, session: session, withSecret: true))
        case (.delete, "connection/station"):
            let old = session.mutable.withLock { m -> StationSettings? in
                defer { m.station = nil }
                return m.station
            }
            if let old { stationChanged(session, previous: old, new: nil) }
            return Response(status: .ok)
        case (.put, "messaging/subscriptions/connection/station"):
            let station = session.mutable.withLock { m -> StationSettings? in
                m.stationSubscribed = true
                return m.station
            }
            enqueue(
                [
                    "__type": .string(ICWSMessage.TypeURN.stationConnectionStateChange), "isDelta": false,
                    "newStationInfo": station.map { stationInfo($0, session: session, withSecret: false) } ?? ["id": "", "extension": "", "stationSetting": .enumValue(StationSetting.unset)],
                ], to: session)
            return Response(status: .ok)
        case (.delete, "messaging/subscriptions/connection/station"):
            session.mutable.withLock { $0.stationSubscribed = false }
            return Response(status: .noContent)
        case (.put, "messaging/subscriptions/interaction-alerting"):
            guard let names = body?["attributeNames"]?.arrayValue, !names.isEmpty, names.allSatisfy({ $0.stringValue != nil })
            else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter",
                                 "Property attributeNames is missing.", property: "attributeNames")
            }
            session.mutable.withLock { $0.alertingAttributes = names.compactMap(\.stringValue) }
            let current = global.withLock { g in g.alertingOrder.compactMap { g.alerting[$0] } }
            enqueue(
                ["__type": .string(ICWSMessage.TypeURN.interactionAlerting), "isDelta": false, "alertingInteractionDetails": .array(current)],
                to: session)
            return Response(status: .noContent)
        case (.delete, "messaging/subscriptions/interaction-alerting"):
            let had = session.mutable.withLock { m -> Bool in
                defer { m.alertingAttributes = nil }
                return m.alertingAttributes != nil
            }
            return had ? Response(status: .noContent) : icwsError(.notFound, "error.request.notFound", "No subscription.")
        case (.get, "messaging/messages"):
            if request.headers[.accept]?.lowercased().contains("text/event-stream") == true {
                guard configuration.messagingVersion >= 2 else {
                    return icwsError(.badRequest, "error.request.unsupported", "Server-sent events need messaging version 2.")
                }
                return eventStream(session)
            }
            let items = session.queue.takeAll()
            if global.withLock({ $0.stallUntil.map { $0 > .now } ?? false }) {
                // A stalled server does not answer polls either; keep the messages.
                for item in items { session.queue.push(item) }
                try? await Task.sleep(for: .seconds(30))
                return json(.ok, [])
            }
            recordDelivered(items, session: session)
            let text = "[" + items.map(\.text).joined(separator: ",") + "]"
            var h: HTTPFields = [:]
            h[.contentType] = Self.jsonType
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
        default:
            let usersPrefix = "messaging/subscriptions/configuration/users/"
            if rest.lowercased().hasPrefix(usersPrefix) {
                let subId = String(rest.dropFirst(usersPrefix.count)).removingPercentEncoding ?? ""
                if method == .put { return putUsersSubscription(session, subId: subId, body: body) }
                if method == .delete {
                    let had = session.mutable.withLock { $0.usersSubscriptions.removeValue(forKey: subId) != nil }
                    return had ? Response(status: .noContent) : icwsError(.notFound, "error.request.notFound", "No subscription.")
                }
            }
            let queuesPrefix = "messaging/subscriptions/queues/"
            if rest.lowercased().hasPrefix(queuesPrefix) {
                let subId = String(rest.dropFirst(queuesPrefix.count)).removingPercentEncoding ?? ""
                if method == .put { return putQueueSubscription(session, subId: subId, body: body) }
                if method == .delete { return deleteQueueSubscription(session, subId: subId) }
            }
            if let response = statusRoute(method, session: session, rest: rest, body: body) { return response }
            let segments = rest.split(separator: "/").map(String.init)
            if let response = callWorkRoute(method, session: session, segments: segments, body: body) { return response }
            if let response = workgroupRoute(method, session: session, rest: rest, body: body) { return response }
            if method == .post, segments.first?.lowercased() == "interactions" {
                if segments.count == 1 { return createCall(session, body: body) }
                if segments.count == 3 {
                    guard let id = segments[1].removingPercentEncoding, !id.isEmpty else { return interactionNotFound() }
                    return interactionAction(session, id: id, action: segments[2].lowercased(), body: body)
                }
            }
            return icwsError(.notFound, "error.request.notFound", "No such resource.")
        }
    }

    func putStation(_ session: SimSession, body: JSONValue?) -> Response {
        guard let body else {
            return icwsError(.badRequest, "error.request.invalidRepresentation", "The request body is not valid JSON.")
        }
        let settings: StationSettings
        do { settings = try StationSettings.decode(body) } catch {
            return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "Property \(error.key) \(error.reason).", property: error.key)
        }
        switch settings.kind {
        case .workstation, .remoteWorkstation:
            guard let w = settings.workstation, !w.isEmpty else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property workstation is missing.", property: "workstation")
            }
            guard configuration.stations.contains(w) else {
                return icwsError(.badRequest, "error.request.connection.unknownStation", "The station \(w) is unknown.")
            }
            if configuration.noLicenseStations.contains(w) {
                return icwsError(.badRequest, "error.request.connection.noLicense", "The user does not have the I3_CLIENT_ACCESS license or the station is in use.")
            }
        case .remoteNumber:
            guard let r = settings.remoteNumber, !r.isEmpty else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property remoteNumber is missing.", property: "remoteNumber")
            }
        case .stationless: break
        }
        let old = session.mutable.withLock { m -> StationSettings? in
            defer { m.station = settings }
            return m.station
        }
        stationChanged(session, previous: old, new: settings)
        var h: HTTPFields = [:]
        h[.location] = "/icws/\(session.id)/connection/station"
        return Response(status: .ok, headers: h)
    }

    func stationInfo(_ s: StationSettings, session: SimSession, withSecret: Bool) -> JSONValue {
        let id: String
        switch s.kind {
        case .workstation, .remoteWorkstation: id = s.workstation ?? ""
        case .remoteNumber: id = s.remoteNumber ?? ""
        case .stationless: id = "stationless"
        }
        let setting: StationSetting = [.workstation: .workstation, .remoteWorkstation: .remoteWorkstation, .remoteNumber: .remoteNumber, .stationless: .unset][s.kind] ?? .unset
        var m: [(String, JSONValue)] = [
            ("id", .string(id)), ("extension", .string(id)), ("canBeDialed", .bool(s.kind != .stationless)),
            ("ringAlways", false), ("sipAddress", .string("sip:\(id)@sim.invalid")), ("sipUser", .string("sip-\(id)")),
        ]
        if withSecret { m.append(("sipPassword", .string("sip-secret-\(id)"))) }
        if let r = s.remoteNumber { m.append(("remoteNumber", .string(r))) }
        m.append(("managedIPPhone", ""))
        m.append(("emergencyResponderLocationID", ""))
        m.append(("stationSetting", .enumValue(setting)))
        m.append(("allowedMediaTypes", .array((s.supportedMediaTypes ?? [1, 2, 3]).map { .int(Int64($0.rawValue)) })))
        return .object(m)
    }

    func stationChanged(_ session: SimSession, previous: StationSettings?, new: StationSettings?) {
        guard session.mutable.withLock({ $0.stationSubscribed }) else { return }
        var m: [(String, JSONValue)] = [("__type", .string(ICWSMessage.TypeURN.stationConnectionStateChange)), ("isDelta", true)]
        if let previous { m.append(("previousStationInfo", stationInfo(previous, session: session, withSecret: false))) }
        m.append(("newStationInfo", new.map { stationInfo($0, session: session, withSecret: false) } ?? ["id": "", "extension": "", "stationSetting": .enumValue(StationSetting.unset)]))
        enqueue(.object(m), to: session)
    }

    func putUsersSubscription(_ session: SimSession, subId: String, body: JSONValue?) -> Response {
        guard !subId.isEmpty else { return icwsError(.notFound, "error.request.notFound", "No subscription id.") }
        for key in ["configurationIds", "properties"] {
            guard let list = body?[key]?.arrayValue, !list.isEmpty, list.allSatisfy({ $0.stringValue != nil }) else {
                return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property \(key) is missing.", property: key)
            }
        }
        guard let rights = body?["rightsFilter"]?.stringValue, !rights.isEmpty else {
            return icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property rightsFilter is missing.", property: "rightsFilter")
        }
        let ids = body?["configurationIds"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let props = body?["properties"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if ids.contains("*") && props.contains("*") {
            return icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", "\"*\" cannot be used for both configurationIds and properties.", property: "properties")
        }
        let sub = UsersSubscription(subscriptionId: subId, configurationIds: ids, properties: props, rightsFilter: rights)
        let directory = global.withLock { $0.directory }
        let unknown = ids.filter { id in id != "*" && !directory.contains(where: { $0.id == id }) }
        if let first = unknown.first {
            return icwsError(.notFound, "error.request.notFound", "The user \(first) does not exist.")
        }
        session.mutable.withLock { $0.usersSubscriptions[subId] = sub }
        var added: [JSONValue] = []
        for entry in directory where ids.contains("*") || ids.contains(entry.id) {
            let displayName = entry.props.first(where: { $0.0 == "displayName" })?.1 ?? .string(entry.id)
            var m: [(String, JSONValue)] = [("configurationId", ["id": .string(entry.id), "displayName": displayName, "uri": .string("/configuration/users/\(entry.id)")])]
            for (k, v) in entry.props where k != "displayName" && (props.contains("*") || props.contains(k)) && !v.isNull {
                m.append((k, v))
            }
            added.append(.object(m))
        }
        enqueue(["__type": .string(ICWSMessage.TypeURN.users), "isDelta": false, "subscriptionId": .string(subId), "added": .array(added)], to: session)
        global.withLock { $0.lastUsersSnapshotAt = .now }
        return Response(status: .ok)
    }

    // MARK: Server-sent events

    func eventStream(_ session: SimSession) -> Response {
        var h: HTTPFields = [:]
        h[.contentType] = "text/event-stream"
        h[.cacheControl] = "no-cache"
        // One stream per session: a new one ends the old, so a dead connection cannot take messages.
        let generation = session.mutable.withLock { m -> Int in
            m.openStreams += 1
            m.streamGeneration += 1
            return m.streamGeneration
        }
        let serial = global.withLock { g -> UInt64 in
            g.streamSerial += 1
            return g.streamSerial
        }
        session.queue.wake()
        let keepAlive = configuration.keepAlive
        let body = ResponseBody { [self] writer in
            defer { session.mutable.withLock { $0.openStreams -= 1 } }
            // The writer is always finished, whatever ended the stream: a NIO writer
            // dropped unfinished traps the whole process.
            do {
                try await pump(session, generation: generation, serial: serial, keepAlive: keepAlive, into: &writer)
            } catch {}
            try? await writer.finish(nil)
        }
        return Response(status: .ok, headers: h, body: body)
    }

    /// Writes queued messages as events until the session ends or a newer stream
    /// (or a reset) takes over; throws when the client went away.
    func pump(_ session: SimSession, generation: Int, serial: UInt64, keepAlive: Duration, into writer: inout any ResponseBodyWriter) async throws {
        if !isSilent(serial) { try await writer.write(ByteBuffer(string: ":ping\n\n")) }
        while !Task.isCancelled {
            if isSilent(serial) {
                try await staySilent(serial)
                continue
            }
            let (gen, alive) = session.mutable.withLock { ($0.streamGeneration, $0.alive) }
            if gen != generation { return }  // reset, expired, or replaced by a newer stream
            if let until = global.withLock({ $0.stallUntil }), until > .now {
                try await Task.sleep(for: min(until - .now, .milliseconds(100)))
                continue
            }
            let items = session.queue.takeAll()
            if !items.isEmpty {
                var buffer = ByteBuffer()
                for item in items {
                    buffer.writeString("data: ")
                    buffer.writeString(item.text)
                    buffer.writeString("\n\n")
                }
                try await writer.write(buffer)
                recordDelivered(items, session: session)
                continue
            }
            if !alive { return }
            let before = ContinuousClock.now
            await session.queue.wait(timeout: keepAlive)
            if ContinuousClock.now - before >= keepAlive, session.queue.count == 0, !isSilent(serial) {
                try await writer.write(ByteBuffer(string: ":ping\n\n"))
            }
        }
    }

    /// Whether `.silentStreams` silenced the stream numbered `serial` (none once stopped).
    func isSilent(_ serial: UInt64) -> Bool {
        global.withLock { serial <= $0.silentThrough && !$0.stopped }
    }

    /// Waits while the stream is silent, as on a suspended client: it writes
    /// nothing (its connection stays open, no FIN), takes no messages (the
    /// session's next stream delivers them), and a reset, a newer stream or the
    /// session's end only take effect after `.clear`.
    func staySilent(_ serial: UInt64) async throws {
        silentPumps.withLock { $0 += 1 }
        defer { silentPumps.withLock { $0 -= 1 } }
        while isSilent(serial) {
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    // MARK: Admin

    func admin(_ request: Request, parts: [String], body: JSONValue?) -> Response {
        let action = parts.count > 1 ? parts[1] : ""
        switch (request.method, action) {
        case (.post, "fault"):
            guard let fault = Self.parseFault(body) else {
                return json(.badRequest, ["error": "unknown or malformed fault; see icws-sim --help"])
            }
            inject(fault)
            return json(.ok, ["ok": true])
        case (.post, "alert"):
            let id = startAlerting(name: body?["name"]?.stringValue ?? "ACME Corp", address: body?["address"]?.stringValue ?? "+13175550123")
            return json(.ok, ["interactionId": .string(id)])
        case (.post, "call"):
            let id = startCall(
                user: body?["user"]?.stringValue ?? "agent", name: body?["name"]?.stringValue ?? "ACME Corp",
                address: body?["address"]?.stringValue ?? "+13175550100")
            return json(.ok, ["interactionId": .string(id)])
        case (.post, "hangup"):
            guard let id = body?["interactionId"]?.stringValue else { return json(.badRequest, ["error": "need interactionId"]) }
            guard interaction(id) != nil else { return json(.notFound, ["error": "no such interaction"]) }
            remoteHangup(id)
            return json(.ok, ["ok": true])
        case (.post, "queue-call"):
            guard let wg = body?["workgroup"]?.stringValue else { return json(.badRequest, ["error": "need workgroup"]) }
            return json(.ok, ["interactionId": .string(queueCall(workgroup: wg, user: body?["user"]?.stringValue ?? "agent"))])
        case (.post, "activation"):
            guard let wg = body?["workgroup"]?.stringValue, let on = body?["activated"]?.boolValue else {
                return json(.badRequest, ["error": "need workgroup and activated"])
            }
            setActivation(wg, on, user: body?["user"]?.stringValue ?? "agent")
            return json(.ok, ["ok": true])
        case (.post, "drop-consult"):
            guard let id = body?["consultId"]?.stringValue else { return json(.badRequest, ["error": "need consultId"]) }
            dropConsultLeg(id)
            return json(.ok, ["ok": true])
        case (.post, "call-options"):
            // {"wrapUpStatus":200, "consultLeg":"afterReply", "markConsult":false, "speakToBoth":"all",
            //  "parentNaming":"conferenceId", "conferenceIdIsParentRow":true, "autoDisconnectLast":false,
            //  "defaultPauseSeconds":60, "untilResumedValue":"", "statisticsFirstIsDelta":false, "activationForbidden":true}
            setCallWorkOptions { o in
                if let v = body?["wrapUpStatus"]?.intValue, (200...299).contains(v) { o.wrapUpStatus = Int(v) }
                if let v = body?["consultLeg"]?.stringValue.flatMap(CallWorkOptions.LegTiming.init(rawValue:)) { o.consultLeg = v }
                if let v = body?["markConsult"]?.boolValue { o.markConsult = v }
                if let v = body?["speakToBoth"]?.stringValue { o.speakToBoth = v }
                if let v = body?["parentNaming"]?.stringValue.flatMap(CallWorkOptions.ParentNaming.init(rawValue:)) { o.parentNaming = v }
                if let v = body?["conferenceIdIsParentRow"]?.boolValue { o.conferenceIdIsParentRow = v }
                if let v = body?["autoDisconnectLast"]?.boolValue { o.autoDisconnectLast = v }
                if let v = body?["defaultPauseSeconds"]?.intValue, (1...86_400).contains(v) { o.defaultPauseSeconds = Int(v) }
                if let v = body?["untilResumedValue"]?.stringValue { o.untilResumedValue = v }
            }
            setStatisticsOptions { o in
                if let v = body?["statisticsFirstIsDelta"]?.boolValue { o.firstIsDelta = v }
                if let v = body?["activationForbidden"]?.boolValue { o.activationForbidden = v }
            }
            return json(.ok, ["ok": true])
        case (.post, "stop-alert"):
            stopAlerting(body?["interactionId"]?.stringValue)
            return json(.ok, ["ok": true])
        case (.post, "user"):
            guard let id = body?["id"]?.stringValue, let prop = body?["property"]?.stringValue, let value = body?["value"] else {
                return json(.badRequest, ["error": "need id, property and value"])
            }
            changeUser(id, property: prop, value: value)
            return json(.ok, ["ok": true])
        case (.post, "status"):
            guard let statusId = body?["statusId"]?.stringValue else { return json(.badRequest, ["error": "need statusId"]) }
            setUserStatus(statusId, user: body?["user"]?.stringValue ?? "agent", notes: body?["notes"]?.stringValue ?? "")
            return json(.ok, ["ok": true])
        case (.post, "status-access"):
            guard let ids = body?["statusIds"]?.arrayValue, ids.allSatisfy({ $0.stringValue != nil }) else {
                return json(.badRequest, ["error": "need statusIds (strings)"])
            }
            setStatusAccess(ids.compactMap(\.stringValue), user: body?["user"]?.stringValue ?? "agent")
            return json(.ok, ["ok": true])
        case (.post, "effective-station"):
            changeEffectiveStation(user: body?["user"]?.stringValue ?? "agent")
            return json(.ok, ["ok": true])
        case (.post, "emit"):
            guard let body, case .object = body else { return json(.badRequest, ["error": "need a JSON object"]) }
            emit(body)
            return json(.ok, ["ok": true])
        case (.post, "traffic"):
            let count = Int(body?["count"]?.intValue ?? 1)
            for _ in 0..<max(0, min(count, 1_000_000)) { randomTraffic() }
            return json(.ok, ["ok": true])
        case (.get, "state"):
            let sessions: [JSONValue] = allLiveSessions().map { s in
                let m = s.mutable.withLock { $0 }
                return [
                    "sessionId": .string(s.id), "userId": .string(s.userId), "host": .string(s.host),
                    "station": m.station.map { $0.json } ?? nil, "stationSubscribed": .bool(m.stationSubscribed),
                    "alertingAttributes": m.alertingAttributes.map { .array($0.map { .string($0) }) } ?? nil,
                    "usersSubscriptions": .array(m.usersSubscriptions.keys.sorted().map { .string($0) }),
                    "queueSubscriptions": .array(m.queueSubscriptions.keys.sorted().map { .string($0) }),
                    "userStatusUserIds": m.userStatusUserIds.map { .array($0.map { .string($0) }) } ?? nil,
                    "statusMessagesSubscribed": .bool(m.statusMessagesSubscribed),
                    "statusAccessUserIds": m.statusAccessUserIds.map { .array($0.map { .string($0) }) } ?? nil,
                    "openStreams": .int(Int64(m.openStreams)), "queued": .int(Int64(s.queue.count)),
                ]
            }
            let interactions: [JSONValue] = calls.withLock { c in
                c.interactions.map { call -> JSONValue in
                    [
                        "interactionId": .string(call.id), "user": .string(call.user),
                        "attributes": .object(call.attributes.map { ($0.name, JSONValue.string($0.value)) }),
                    ]
                }
            }
            let statuses: [JSONValue] = status.withLock { st in st.users.values.sorted { $0.userId < $1.userId }.map(\.json) }
            let (sequence, logins) = global.withLock { ($0.sequence, $0.loginCount) }
            return json(
                .ok,
                [
                    "sessions": .array(sessions), "interactions": .array(interactions), "userStatuses": .array(statuses),
                    "silentStreams": .int(Int64(silentStreamCount)), "lastSequence": .int(Int64(sequence)), "logins": .int(Int64(logins)),
                ])
        default:
            return json(.notFound, ["error": "unknown admin resource"])
        }
    }

    /// The answer of a standing `.failRequests` fault that matches, if any.
    func injectedFailure(method: String, rest: String) -> Response? {
        let lower = rest.lowercased()
        let failure = global.withLock { g -> RequestFailure? in
            guard let i = g.requestFailures.firstIndex(where: { f in (f.method == nil || f.method == method) && lower.contains(f.pathContains) })
            else { return nil }
            let f = g.requestFailures[i]
            if let c = f.count {
                if c <= 1 { g.requestFailures.remove(at: i) } else { g.requestFailures[i].count = c - 1 }
            }
            return f
        }
        guard let failure else { return nil }
        let status = HTTPResponse.Status(code: failure.status)
        switch failure.body {
        case .icws(let errorId, let message): return icwsError(status, errorId, message)
        case .text(let text):
            return Response(status: status, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: text)))
        case .empty: return Response(status: status)
        }
    }

    /// `{"kind": "down", "shouldReconnect": true}` and friends (see `SimFault`).
    public static func parseFault(_ body: JSONValue?) -> SimFault? {
        guard let kind = body?["kind"]?.stringValue else { return nil }
        let seconds = body?["seconds"].flatMap { v -> Double? in
            if case .double(let d) = v { return d }
            return v.intValue.map(Double.init)
        }
        switch kind {
        case "down":
            return .down(shouldReconnect: body?["shouldReconnect"]?.boolValue, reason: body?["reason"]?.stringValue ?? "The server is shutting down.")
        case "expire":
            return .expire(challenge: body?["challenge"]?.boolValue ?? true, location: body?["location"]?.stringValue)
        case "unavailable":
            return .unavailable(
                alternates: body?["alternates"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                acceptHosts: body?["acceptHosts"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                count: body?["count"]?.intValue.map { Int($0) })
        case "reset": return .resetStreams
        case "stall": return .stall(.milliseconds(Int64((seconds ?? 5) * 1000)))
        case "malformed": return .malformed
        case "huge": return .huge(bytes: Int(body?["bytes"]?.intValue ?? 4 << 20))
        case "unknown": return .unknownMessage
        case "restart": return .restart(downFor: .milliseconds(Int64((seconds ?? 2) * 1000)))
        case "queueSnapshotMissing": return .queueSnapshotMissing
        case "queueFaulted": return .queueFaulted
        case "queueOddValues": return .queueOddValues
        case "status-completion-error": return .statusCompletionError
        case "status-no-completion": return .statusNoCompletion
        case "status-immediate": return .statusImmediate
        case "subscription-faulted":
            guard let suffix = body?["subscription"]?.stringValue, !suffix.isEmpty else { return nil }
            return .subscriptionFaulted(subscriptionPathSuffix: suffix)
        case "silent": return .silentStreams
        case "outage":
            return .outage(downFor: .milliseconds(Int64((seconds ?? 20) * 1000)), retryAfter: body?["retryAfter"].flatMap { $0.stringValue ?? $0.intValue.map(String.init) })
        case "fail-requests":
            guard let path = body?["path"]?.stringValue, let status = body?["status"]?.intValue, (400...599).contains(status) else { return nil }
            let errorBody: SimErrorBody
            switch body?["body"]?.stringValue {
            case "text": errorBody = .text(body?["text"]?.stringValue ?? "Internal Server Error")
            case "empty": errorBody = .empty
            default: errorBody = .icws(errorId: body?["errorId"]?.stringValue ?? "error.sim.injected", message: body?["message"]?.stringValue ?? "injected failure")
            }
            return .failRequests(method: body?["method"]?.stringValue, pathContains: path, status: Int(status), count: body?["count"]?.intValue.map { Int($0) }, body: errorBody)
        case "status-completion-error-value":
            guard let value = body?["error"] else { return nil }
            return .statusCompletionErrorValue(value)
        case "clear": return .clear
        default: return nil
        }
    }
}
