import Foundation
import HTTPTypes
import Hummingbird
import ICWSProtocol

/// How icws-sim answers where part three of the notes lists more than one
/// way (each switchable, so that tests cover each).
public struct CallWorkOptions: Sendable, Equatable {
    /// The success status of `POST …/wrap-up-assignments` (201 per the one peer; 200 also seen as likely).
    public var wrapUpStatus = 201
    /// When the consult leg shows on the queue: before the 201, a moment after it, or never.
    public enum LegTiming: String, Sendable { case beforeReply, afterReply, never }
    public var consultLeg = LegTiming.beforeReply
    /// The original of a consult carries `Eic_ConsultCallId` and `Eic_ConsultCallSpeakTo`
    /// (that `Eic_ConsultCallId` is the consult's id is not confirmed; off, neither is sent).
    public var markConsult = true
    /// `Eic_ConsultCallSpeakTo` for "both" (its value is not published).
    public var speakToBoth = "both"
    /// A conference child's `conferenceParentId`: the parent row's id (`parentRow`) or the conference id.
    public enum ParentNaming: String, Sendable { case parentRow, conferenceId }
    public var parentNaming = ParentNaming.parentRow
    /// The 201's `conferenceId`: the conference id (as `Eic_ConferenceId`) or the parent row's id.
    public var conferenceIdIsParentRow = false
    /// The last call left in a conference is disconnected (Auto Disconnect Last Call).
    public var autoDisconnectLast = true
    /// The server's default secure pause (type 1), in seconds.
    public var defaultPauseSeconds = 120
    /// `Eic_RecordingsAutoResumeTime` during a pause until resumed (type 2); the form is not published.
    public var untilResumedValue = "99991231T235959Z"

    public init() {}
}

/// The consults and conferences the simulated server holds (they outlive sessions).
struct CallWorkState: Sendable {
    var options = CallWorkOptions()
    var consults: [String: (original: String, leg: String)] = [:]
    /// Conference id → the parent row and the children.
    var conferences: [String: (parent: String, children: [String])] = [:]
    var serial: UInt64 = 0
    /// Bumped by every pause or resume of an interaction (a timer of an older one does nothing).
    var pauseGeneration: [String: UInt64] = [:]
}

extension ICWSSimulator {
    static let securePauseCapability: UInt32 = 262_144

    /// Sets how the simulated server answers part three's open points.
    public func setCallWorkOptions(_ change: (inout CallWorkOptions) -> Void) {
        calls.withLock { change(&$0.work.options) }
    }

    /// The consult the server holds for an original interaction: its id and its leg.
    public func consult(of original: String) -> (consultId: String, leg: String)? {
        calls.withLock { c in c.work.consults.first { $0.value.original == original }.map { ($0.key, $0.value.leg) } }
    }

    /// The conferences the server holds: id → parent row and children.
    public var conferences: [String: (parent: String, children: [String])] { calls.withLock { $0.work.conferences } }

    /// The consulted party hangs up mid-consult: the leg goes (E, then removed)
    /// and the original keeps its held caller, no longer in a consult.
    public func dropConsultLeg(_ consultId: String) {
        calls.withLock { c in
            guard let consult = c.work.consults.removeValue(forKey: consultId) else { return }
            if let i = c.interactions.firstIndex(where: { $0.id == consult.leg }) { hangUp(at: i, state: "E", in: &c) }
            if let i = c.interactions.firstIndex(where: { $0.id == consult.original }) {
                apply([("Eic_ConsultCallId", ""), ("Eic_ConsultCallSpeakTo", "")], at: i, in: &c)
            }
        }
    }

    // MARK: Routes

    /// The part-three interaction routes, or nil when `segments` is none of them.
    func callWorkRoute(_ method: HTTPRequest.Method, session: SimSession, segments: [String], body: JSONValue?) -> Response? {
        guard segments.first?.lowercased() == "interactions", segments.count >= 2 else { return nil }
        if segments[1].lowercased() == "conferences" {
            switch (method, segments.count) {
            case (.post, 2): return createConference(session, body: body)
            case (.put, 3): return addToConference(session, conferenceId: segments[2].removingPercentEncoding ?? segments[2], body: body)
            default: return nil
            }
        }
        let id = segments[1].removingPercentEncoding ?? segments[1]
        let rest = segments.dropFirst(2).map { $0.lowercased() }
        switch (method, rest.first, rest.count) {
        case (.post, nil, 0): return writeAttributes(session, id: id, body: body)
        case (.post, "wrap-up-assignments", 1): return wrapUpAssignment(session, id: id, body: body)
        case (.post, "consult", 1): return startConsult(session, id: id, body: body)
        case (.post, "consult", 3) where rest[2] == "change-audience":
            return changeAudience(session, id: id, consultId: segments[3].removingPercentEncoding ?? segments[3], body: body)
        case (.post, "consult", 3) where rest[2] == "conclude":
            return endConsult(session, id: id, consultId: segments[3].removingPercentEncoding ?? segments[3], conclude: true)
        case (.delete, "consult", 2):
            return endConsult(session, id: id, consultId: segments[3].removingPercentEncoding ?? segments[3], conclude: false)
        case (.post, "secure-pause", 1): return securePause(session, id: id, body: body)
        default: return nil
        }
    }

    private func missing(_ property: String) -> Response {
        icwsError(.badRequest, "error.request.invalidRepresentation.missingRequiredParameter", "Property \(property) is missing.", property: property)
    }

    private func invalid(_ property: String, _ message: String) -> Response {
        icwsError(.badRequest, "error.request.invalidRepresentation.invalidProperty", message, property: property)
    }

    private func index(_ id: String, _ session: SimSession, in c: CallState) -> Int? {
        c.interactions.firstIndex { $0.id == id && Self.sameUser($0.user, session.userId) }
    }

    /// `POST /interactions/{id}` with `{"attributes": {…}}` (strings only).
    func writeAttributes(_ session: SimSession, id: String, body: JSONValue?) -> Response {
        guard let members = body?["attributes"]?.objectValue else { return missing("attributes") }
        guard members.allSatisfy({ $0.1.stringValue != nil }) else { return invalid("attributes", "Attribute values must be strings.") }
        let found = calls.withLock { c -> Bool in
            guard let i = index(id, session, in: c) else { return false }
            apply(members.map { (name: $0.0, value: $0.1.stringValue ?? "") }, at: i, in: &c)
            return true
        }
        return found ? Response(status: .ok) : interactionNotFound()
    }

    /// `POST /interactions/{id}/wrap-up-assignments`: every field required.
    func wrapUpAssignment(_ session: SimSession, id: String, body: JSONValue?) -> Response {
        for key in ["code", "time", "user", "sourceInteractionId"] where (body?[key]?.stringValue ?? "").isEmpty { return missing(key) }
        guard let segment = body?["segmentId"]?.intValue else { return missing("segmentId") }
        let code = body?["code"]?.stringValue ?? ""
        let user = body?["user"]?.stringValue ?? ""
        let source = body?["sourceInteractionId"]?.stringValue ?? ""
        let time = body?["time"]?.stringValue ?? ""
        let status = calls.withLock { c -> Int? in
            guard let i = index(id, session, in: c) else { return nil }
            let set = "IID=\(id);SIID=\(source);SID=\(segment);UID=\(user);WCO=\(code);TMS=\(time)"
            apply([("Eic_WrapUpCode", code), ("Eic_WrapUpCodeSet", set)], at: i, in: &c)
            return c.work.options.wrapUpStatus
        }
        guard let status else { return interactionNotFound() }
        return Response(status: HTTPResponse.Status(code: status))
    }

    /// `POST /interactions/{id}/consult`: 201 with the consult and its leg.
    func startConsult(_ session: SimSession, id: String, body: JSONValue?) -> Response {
        let target = body?["target"]?.stringValue ?? ""
        let hasQueue = body?["queueID"].map { !$0.isNull } ?? false
        guard target.isEmpty != !hasQueue else {
            return invalid("target", "Exactly one of target and queueID is required.")
        }
        enum Outcome { case notFound, badState(String), made(consultId: String, leg: String, later: SimInteraction?) }
        let outcome = calls.withLock { c -> Outcome in
            guard let i = index(id, session, in: c) else { return .notFound }
            let state = c.interactions[i].state
            guard ["C", "H"].contains(state) else { return .badState(state) }
            c.work.serial += 1
            let consultId = "consult-\(c.work.serial)"
            c.nextId += 1
            let legId = String(c.nextId)
            c.work.consults[consultId] = (original: id, leg: legId)
            let mark = c.work.options.markConsult ? [(name: "Eic_ConsultCallId", value: consultId), (name: "Eic_ConsultCallSpeakTo", value: "consult")] : []
            apply(Self.stateAttributes("H") + mark, at: i, in: &c)
            var leg = SimInteraction(
                id: legId, user: c.interactions[i].user,
                attributes: Self.callAttributes(state: "R", direction: "O", name: target.isEmpty ? "Queue" : target, address: target))
            leg["Eic_ConsultingCallId"] = id
            if c.work.options.markConsult { leg["Eic_ConsultCallId"] = consultId }
            switch c.work.options.consultLeg {
            case .beforeReply:
                c.interactions.append(leg)
                sendQueueChange(.added(leg), user: leg.user)
                return .made(consultId: consultId, leg: legId, later: nil)
            case .afterReply: return .made(consultId: consultId, leg: legId, later: leg)
            case .never: return .made(consultId: consultId, leg: legId, later: nil)
            }
        }
        switch outcome {
        case .notFound: return interactionNotFound()
        case .badState(let state):
            return icwsError(.badRequest, "error.request.interaction.invalidState", "The interaction's state (\(state)) does not allow consult.")
        case .made(let consultId, let legId, let later):
            Task { [weak self] in
                if let later {
                    try? await Task.sleep(for: .milliseconds(100))
                    self?.calls.withLock { c in
                        guard c.work.consults[consultId] != nil else { return }
                        c.interactions.append(later)
                        self?.sendQueueChange(.added(later), user: later.user)
                    }
                }
                try? await Task.sleep(for: Self.outboundConnectDelay)
                self?.outboundAnswered(legId)
            }
            var h = HTTPFields()
            h[.location] = "/icws/\(session.id)/interactions/\(id)/consult/\(consultId)"
            return json(.created, ["consultId": .string(consultId), "consultInteractionId": .string(legId)], headers: h)
        }
    }

    /// `POST …/consult/{consultId}/change-audience`.
    func changeAudience(_ session: SimSession, id: String, consultId: String, body: JSONValue?) -> Response {
        guard let audience = body?["audience"], audience.objectValue != nil else { return missing("audience") }
        let original = audience["originalParty"]?.boolValue ?? false
        let consulted = audience["consultedParty"]?.boolValue ?? false
        guard original || consulted else { return invalid("audience", "The agent must speak to someone.") }
        let found = calls.withLock { c -> Bool in
            guard let consult = c.work.consults[consultId], consult.original == id, let i = index(id, session, in: c) else { return false }
            let value = original && consulted ? c.work.options.speakToBoth : original ? "caller" : "consult"
            if c.work.options.markConsult { apply([("Eic_ConsultCallSpeakTo", value)], at: i, in: &c) }
            return true
        }
        return found ? Response(status: .ok) : icwsError(.notFound, "error.request.notFound", "The consult does not exist.")
    }

    /// `POST …/consult/{consultId}/conclude` (both legs go) and `DELETE …/consult/{consultId}`
    /// (the leg goes; the caller is back on the original).
    func endConsult(_ session: SimSession, id: String, consultId: String, conclude: Bool) -> Response {
        let found = calls.withLock { c -> Bool in
            guard let consult = c.work.consults[consultId], consult.original == id, let i = index(id, session, in: c) else { return false }
            c.work.consults.removeValue(forKey: consultId)
            if conclude {
                hangUp(at: i, state: "I", in: &c)
            } else {
                apply(Self.stateAttributes("C") + [("Eic_ConsultCallId", ""), ("Eic_ConsultCallSpeakTo", "")], at: i, in: &c)
            }
            if let j = c.interactions.firstIndex(where: { $0.id == consult.leg }) { hangUp(at: j, state: "I", in: &c) }
            return true
        }
        return found ? Response(status: .ok) : icwsError(.notFound, "error.request.notFound", "The consult does not exist.")
    }

    /// `POST /interactions/{id}/secure-pause`.
    func securePause(_ session: SimSession, id: String, body: JSONValue?) -> Response {
        guard let type = body?["securePauseType"]?.intValue else { return missing("securePauseType") }
        guard (1...4).contains(type) else { return invalid("securePauseType", "securePauseType must be 1 to 4.") }
        var seconds: Int64?
        if type == 3 {
            guard let d = body?["duration"]?.intValue, d >= 1 else { return missing("duration") }
            seconds = d
        }
        enum Outcome { case notFound, forbidden, done(generation: UInt64, seconds: Int64?) }
        let outcome = calls.withLock { c -> Outcome in
            guard let i = index(id, session, in: c) else { return .notFound }
            guard let caps = c.interactions[i]["Eic_Capabilities"].flatMap(UInt32.init), caps & Self.securePauseCapability != 0 else {
                return .forbidden
            }
            let generation = (c.work.pauseGeneration[id] ?? 0) + 1
            c.work.pauseGeneration[id] = generation
            switch type {
            case 4:
                apply([("Eic_RecordingsAutoResumeTime", ""), ("Eic_SecureRecordingPauseStartTime", "")], at: i, in: &c)
                return .done(generation: generation, seconds: nil)
            case 2:
                apply([("Eic_RecordingsAutoResumeTime", c.work.options.untilResumedValue), ("Eic_SecureRecordingPauseStartTime", Self.compactUTC())], at: i, in: &c)
                return .done(generation: generation, seconds: nil)
            default:
                let length = seconds ?? Int64(c.work.options.defaultPauseSeconds)
                let resume = Self.compactUTC(Date().addingTimeInterval(TimeInterval(length)))
                apply([("Eic_RecordingsAutoResumeTime", resume), ("Eic_SecureRecordingPauseStartTime", Self.compactUTC())], at: i, in: &c)
                return .done(generation: generation, seconds: length)
            }
        }
        switch outcome {
        case .notFound: return interactionNotFound()
        case .forbidden:
            return icwsError(.forbidden, "error.request.accessDenied", "The interaction cannot be securely paused.")
        case .done(let generation, let seconds):
            if let seconds {
                // The pause ends by itself (unless paused again or resumed first).
                Task { [weak self] in
                    try? await Task.sleep(for: .seconds(seconds))
                    self?.calls.withLock { c in
                        guard c.work.pauseGeneration[id] == generation, let i = c.interactions.firstIndex(where: { $0.id == id }) else { return }
                        self?.apply([("Eic_RecordingsAutoResumeTime", ""), ("Eic_SecureRecordingPauseStartTime", "")], at: i, in: &c)
                    }
                }
            }
            return Response(status: .ok)
        }
    }

    /// The ids of `body.interactions`, each on the session user's queue.
    private func conferenceParties(_ session: SimSession, _ body: JSONValue?, min: Int, in c: CallState) -> Result<[String], SimRefusal> {
        guard let list = body?["interactions"]?.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
            return .failure(.init(missing("interactions")))
        }
        let ids = list.compactMap(\.stringValue)
        guard ids.count >= min else { return .failure(.init(invalid("interactions", "At least \(min) interactions are needed."))) }
        for id in ids where index(id, session, in: c) == nil || c.interactions[index(id, session, in: c) ?? 0].isDisconnected {
            return .failure(.init(invalid("interactions", "The interaction \(id) cannot join a conference.")))
        }
        return .success(ids)
    }

    /// Moves parties into a conference: each leaves the queue and comes back as a child.
    private func makeChildren(_ ids: [String], conferenceId: String, parent: String, in c: inout CallState) {
        let parentName = c.work.options.parentNaming == .parentRow ? parent : conferenceId
        for id in ids {
            guard let i = c.interactions.firstIndex(where: { $0.id == id }) else { continue }
            var call = c.interactions.remove(at: i)
            sendQueueChange(.removed(id: id), user: call.user)
            call["Eic_ConferenceId"] = conferenceId
            call["Eic_State"] = "C"
            call["Eic_Capabilities"] = Self.capabilities(forState: "C")
            call.conferenceParentId = parentName
            c.interactions.append(call)
            sendQueueChange(.added(call), user: call.user)
            c.work.conferences[conferenceId]?.children.append(id)
        }
    }

    /// `POST /interactions/conferences`: 201 with the conference's id.
    func createConference(_ session: SimSession, body: JSONValue?) -> Response {
        let result = calls.withLock { c -> Result<String, SimRefusal> in
            let ids: [String]
            switch conferenceParties(session, body, min: 2, in: c) {
            case .failure(let r): return .failure(r)
            case .success(let v): ids = v
            }
            c.work.serial += 1
            let conferenceId = "conference-\(c.work.serial)"
            var attributes = Self.callAttributes(state: "C", direction: "I", name: "Conference", address: "")
            if let k = attributes.firstIndex(where: { $0.name == "Eic_ConferenceId" }) { attributes[k].value = conferenceId }
            let parent = insertInteraction(user: session.userId, attributes: attributes, in: &c)
            c.work.conferences[conferenceId] = (parent: parent, children: [])
            makeChildren(ids, conferenceId: conferenceId, parent: parent, in: &c)
            return .success(c.work.options.conferenceIdIsParentRow ? parent : conferenceId)
        }
        switch result {
        case .failure(let r): return r.response
        case .success(let id): return json(.created, ["conferenceId": .string(id)])
        }
    }

    /// `PUT /interactions/conferences/{conferenceId}`: more parties.
    func addToConference(_ session: SimSession, conferenceId: String, body: JSONValue?) -> Response {
        let result = calls.withLock { c -> SimRefusal? in
            // The conference by its id, or by its parent row's.
            guard let key = c.work.conferences.first(where: { $0.key == conferenceId || $0.value.parent == conferenceId })?.key,
                let parent = c.work.conferences[key]?.parent
            else { return SimRefusal(icwsError(.notFound, "error.request.notFound", "The conference does not exist.")) }
            switch conferenceParties(session, body, min: 1, in: c) {
            case .failure(let r): return r
            case .success(let ids): makeChildren(ids, conferenceId: key, parent: parent, in: &c)
            }
            return nil
        }
        return result?.response ?? Response(status: .ok)
    }

    /// A party of a conference hung up (under the `calls` lock): with one
    /// party left the last is disconnected (when the server does so), with
    /// none the parent goes.
    func conferencePartyLeft(_ id: String, in c: inout CallState) {
        guard let key = c.work.conferences.first(where: { $0.value.children.contains(id) })?.key, var conference = c.work.conferences[key] else { return }
        conference.children.removeAll { $0 == id }
        c.work.conferences[key] = conference
        if conference.children.count == 1, c.work.options.autoDisconnectLast,
            let i = c.interactions.firstIndex(where: { $0.id == conference.children[0] })
        {
            hangUp(at: i, state: "I", in: &c)
            return
        }
        if conference.children.isEmpty {
            c.work.conferences.removeValue(forKey: key)
            if let i = c.interactions.firstIndex(where: { $0.id == conference.parent }) { hangUp(at: i, state: "I", in: &c) }
        }
    }
}

/// A refusal to hand back from under a lock.
struct SimRefusal: Error, @unchecked Sendable {
    let response: Response
    init(_ response: Response) { self.response = response }
}
