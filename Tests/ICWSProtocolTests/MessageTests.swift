import ICWSProtocol
import Testing

@Suite struct MessageDecodingTests {
    func decode(_ text: String) throws(MessageDecodeError) -> ICWSMessage { try ICWSMessage.decode(text: Array(text.utf8)) }

    @Test func connectionStateChange() throws {
        let m = try decode(#"{"__type":"urn:inin.com:connection:connectionStateChangeMessage","isDelta":false,"previousConnectionState":1,"newConnectionState":2,"reason":"The server is shutting down.","shouldReconnect":true,"future":1}"#)
        #expect(m == .connectionStateChange(.init(isDelta: false, previousConnectionState: 1, newConnectionState: 2, reason: "The server is shutting down.", shouldReconnect: true)))
        let named = try decode(#"{"__type":"urn:inin.com:connection:connectionStateChangeMessage","isDelta":false,"previousConnectionState":"up","newConnectionState":"Down","reason":"x"}"#)
        guard case .connectionStateChange(let c) = named else { Issue.record("wrong kind"); return }
        #expect(c.newConnectionState == 2 && c.previousConnectionState == 1 && c.shouldReconnect == nil)
    }

    @Test func stationConnectionStateChange() throws {
        let m = try decode(#"{"__type":"urn:inin.com:connection:stationConnectionStateChangeMessage","isDelta":false,"previousStationInfo":{"id":"7002","extension":"7002","stationSetting":1},"newStationInfo":{"id":"7001","extension":"7001","canBeDialed":true,"ringAlways":false,"sipAddress":"sip:7001@x","sipUser":"u","sipPassword":"pw","remoteNumber":"+1","managedIPPhone":"","emergencyResponderLocationID":"e","stationSetting":"workstation","allowedMediaTypes":[1,"chat",3]}}"#)
        guard case .stationConnectionStateChange(let s) = m else { Issue.record("wrong kind"); return }
        #expect(s.previousStationInfo?.id == "7002")
        #expect(s.newStationInfo.id == "7001")
        #expect(s.newStationInfo.canBeDialed == true && s.newStationInfo.ringAlways == false)
        #expect(s.newStationInfo.sipPassword?.value == "pw")
        #expect(s.newStationInfo.stationSetting == 1)
        #expect(s.newStationInfo.allowedMediaTypes == [1, 2, 3])
        #expect(s.newStationInfo.emergencyResponderLocationID == "e")
        #expect(!"\(s)".contains("pw\""), "sipPassword must not print")
        #expect("\(s.newStationInfo.sipPassword!)" == "<redacted>")
    }

    @Test func interactionAlerting() throws {
        let m = try decode(#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":true,"alertingInteractionDetails":[{"interactionId":"100203040506","interactionType":"Call","name":"ACME Corp","address":"+13175550123","alertType":5,"alertAction":1,"autoAnswer":false,"monitoredQueue":{"queueType":2,"queueName":"Support"},"attributes":{"Eic_RemoteName":"ACME Corp","Eic_WorkgroupName":"Support","n":null}}]}"#)
        guard case .interactionAlerting(let a) = m else { Issue.record("wrong kind"); return }
        #expect(a.isDelta)
        let d = try #require(a.details.first)
        #expect(d == InteractionAlertDetail(interactionId: "100203040506", interactionType: "Call", name: "ACME Corp", address: "+13175550123", alertType: 5, alertAction: 1, autoAnswer: false, queueType: 2, queueName: "Support", attributes: [("Eic_RemoteName", "ACME Corp"), ("Eic_WorkgroupName", "Support")]))
    }

    @Test func users() throws {
        let m = try decode(#"{"__type":"urn:inin.com:configuration.people:usersMessage","isDelta":true,"subscriptionId":"bridge-users","added":[{"configurationId":{"id":"asmith","displayName":"Alex Smith","uri":"/configuration/users/asmith"},"extension":"7123"}],"changed":[{"configurationId":{"id":"jdoe","displayName":"Jane Doe"},"statusText":"Lunch","notes":null}],"removed":["olduser",{"configurationId":{"id":"other"}}]}"#)
        guard case .users(let u) = m else { Issue.record("wrong kind"); return }
        #expect(u.subscriptionId == "bridge-users")
        #expect(u.added == [UserEntry(id: "asmith", displayName: "Alex Smith", properties: [("extension", "7123")])])
        #expect(u.changed == [UserEntry(id: "jdoe", displayName: "Jane Doe", properties: [("statusText", "Lunch"), ("notes", nil)])])
        #expect(u.removed == ["olduser", "other"])
    }

    @Test func asyncAndSubscriptionState() throws {
        #expect(try decode(#"{"__type":"urn:inin.com:messaging:asyncOperationCompletedMessage","isDelta":false,"requestId":"5f1c","error":null}"#) == .asyncOperationCompleted(.init(requestId: "5f1c", error: nil)))
        #expect(try decode(#"{"__type":"urn:inin.com:messaging:asyncOperationCompletedMessage","isDelta":false,"requestId":"5f1c"}"#) == .asyncOperationCompleted(.init(requestId: "5f1c", error: nil)))
        guard case .asyncOperationCompleted(let a) = try decode(#"{"__type":"urn:inin.com:messaging:asyncOperationCompletedMessage","isDelta":false,"requestId":"5f1c","error":{"errorId":"error.status.x","message":"nope"}}"#) else {
            Issue.record("not a completion")
            return
        }
        #expect(a.error?.errorId == "error.status.x" && a.error?.message == "nope" && a.error?.kind == .reported)
        #expect(a.error?.serverText == "error.status.x: nope")
        guard case .subscriptionState(let s) = try decode(#"{"__type":"urn:inin.com:messaging:subscriptionStateMessage","isDelta":false,"state":3,"error":{"message":"broken"}}"#) else {
            Issue.record("not a subscription state")
            return
        }
        #expect(s.state == .faulted && s.error?.message == "broken" && s.error?.errorId == nil)
    }

    /// An `error` that is not an object is still an error, never a success;
    /// an errorId sent as a number keeps its text; a huge message is cut.
    @Test func reportedErrorsOfEveryShape() {
        #expect(ICWSError.reported(nil) == nil && ICWSError.reported(.null) == nil)
        #expect(ICWSError.reported(.bool(true))?.message == "the server reported an error without a text")
        #expect(ICWSError.reported(.string("refused"))?.message == "refused")
        #expect(ICWSError.reported(.array([]))?.kind == .reported)
        #expect(ICWSError.reported(["errorId": 42, "message": 7])?.errorId == "42")
        let long = ICWSError.reported(["errorId": .string(String(repeating: "e", count: 10_000)), "message": .string(String(repeating: "m\n", count: 1 << 20))])
        #expect((long?.errorId?.utf8.count ?? 0) <= 256 + 3 && (long?.message.utf8.count ?? 0) <= 1024 + 3 && !(long?.message.contains("\n") ?? true))
        let bare = ICWSError.fromResponse(status: 500, body: Array("<html>Internal Server Error</html>".utf8), wwwAuthenticate: [])
        #expect(bare.errorId == nil && bare.httpText == "HTTP 500 HTTP 500, no ICWS error in the body")
        let full = ICWSError.fromResponse(status: 500, body: Array(#"{"errorId":"error.server.internal","message":"boom"}"#.utf8), wwwAuthenticate: [])
        #expect(full.httpText == "HTTP 500 error.server.internal: boom")
    }

    /// Retry-After as seconds or an HTTP-date, bounded to [1 s, 1 h]; anything else ignored.
    @Test func retryAfter() {
        #expect(RetryAfter.parse("5") == .seconds(5))
        #expect(RetryAfter.parse(" 0 ") == .seconds(1))
        #expect(RetryAfter.parse("99999999999999999999") == .seconds(3600))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_767) == .seconds(10))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 900_000_000) == .seconds(1))
        #expect(RetryAfter.parse("soon") == nil && RetryAfter.parse("") == nil && RetryAfter.parse("-3") == nil && RetryAfter.parse("1.5") == nil)
        #expect(RetryAfter.parse("Sun, 99 Nov 1994 08:49:37 GMT") == nil)
        let e = ICWSError.fromResponse(status: 503, body: [], wwwAuthenticate: [], retryAfter: "7")
        #expect(e.retryAfter == .seconds(7))
        #expect(ICWSError.fromResponse(status: 500, body: [], wwwAuthenticate: [], retryAfter: "7").retryAfter == nil)
    }

    @Test func unknownTypePassesThroughRaw() throws {
        // (userStatusMessage, the type this test used, is known since contract v1.1.)
        let m = try decode(#"{"__type":"urn:inin.com:example:notKnownMessage","isDelta":true,"userStatusList":[]}"#)
        guard case .unknown(let type, let raw) = m else { Issue.record("wrong kind"); return }
        #expect(type == "urn:inin.com:example:notKnownMessage")
        #expect(raw["userStatusList"] == .array([]))
    }

    @Test(arguments: [
        (#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":tru"#, ""),
        (#"[1]"#, ""),
        (#"{"isDelta":true}"#, "__type"),
        (#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":true}"#, "alertingInteractionDetails"),
        (#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":true,"alertingInteractionDetails":[{"alertAction":1}]}"#, "alertingInteractionDetails[0].interactionId"),
        (#"{"__type":"urn:inin.com:interactions:interactionAlertingMessage","isDelta":true,"alertingInteractionDetails":[{"interactionId":"1","alertAction":"sideways"}]}"#, "alertingInteractionDetails[0].alertAction"),
        (#"{"__type":"urn:inin.com:connection:stationConnectionStateChangeMessage","isDelta":true}"#, "newStationInfo"),
        (#"{"__type":"urn:inin.com:configuration.people:usersMessage","isDelta":true,"added":[{"extension":"1"}]}"#, "added[0].configurationId.id"),
        (#"{"__type":"urn:inin.com:connection:connectionStateChangeMessage","isDelta":"maybe","newConnectionState":2}"#, "isDelta"),
    ])
    func malformedGivesAClearError(_ text: String, _ field: String) {
        do {
            _ = try decode(text)
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.field == field)
            #expect(error.description.contains("malformed ICWS message"))
        }
    }

    @Test func stationSettingsJSONAndValidation() throws {
        let s = StationSettings(kind: .workstation, workstation: "7001", supportedMediaTypes: [1, 2, 3], readyForInteractions: true, stationConnectionMode: 0)
        #expect(s.json == ["__type": "urn:inin.com:connection:workstationSettings", "workstation": "7001", "supportedMediaTypes": [1, 2, 3], "readyForInteractions": true, "stationConnectionMode": 0])
        #expect(try StationSettings.decode(s.json) == s)
        let r = StationSettings(kind: .remoteNumber, remoteNumber: "+13175550100", persistentConnection: true, supportedMediaTypes: [1])
        #expect(r.json == ["__type": "urn:inin.com:connection:remoteNumberSettings", "remoteNumber": "+13175550100", "persistentConnection": true, "supportedMediaTypes": [1], "readyForInteractions": false])
        #expect(throws: StationSettingsError(key: "workstation", reason: "is required for a workstation station")) { try StationSettings(kind: .workstation).validate() }
        #expect(throws: StationSettingsError.self) { try StationSettings(kind: .remoteNumber).validate() }
        #expect(throws: StationSettingsError.self) { try StationSettings(kind: .stationless, persistentConnection: true).validate() }
        #expect(throws: StationSettingsError.self) { try StationSettings(kind: .stationless, supportedMediaTypes: [42]).validate() }
        #expect(throws: Never.self) { try StationSettings(kind: .stationless, supportedMediaTypes: [2, 3]).validate() }
        #expect(throws: Never.self) { try StationSettings(kind: .remoteWorkstation, workstation: "7001", remoteNumber: "+1").validate() }
    }

    @Test func errorBodies() {
        let e = ICWSError.fromResponse(status: 400, body: Array(#"{"errorId":"error.request.invalidRepresentation.missingRequiredParameter","message":"Property workstation is missing.","propertyName":"workstation","errorCode":-5}"#.utf8), wwwAuthenticate: [])
        #expect(e.errorId == "error.request.invalidRepresentation.missingRequiredParameter")
        #expect(e.propertyName == "workstation" && e.errorCode == -5 && e.status == 400)
        let c = ICWSError.fromResponse(status: 401, body: Array("not json".utf8), wwwAuthenticate: [#"ICWS realm="ICWS" location="/ICWS/connection""#])
        #expect(c.challenge?.location == "/ICWS/connection")
        #expect(c.message == "HTTP 401, no ICWS error in the body")
        let a = ICWSError.fromResponse(status: 503, body: Array(#"{"errorId":"error.server.notAcceptingConnections","message":"m","alternateHostList":["cic2",""]}"#.utf8), wwwAuthenticate: [])
        #expect(a.alternateHosts == ["cic2"])
    }
}

/// Contract v1.2's two messages: activations and statistic values (P3.E).
@Suite struct WorkgroupMessageTests {
    @Test func activationMessages() throws {
        let m = try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:activations:userActivationMessage","isDelta":true,"subscriptionId":"s","userId":"agent","activationsChanged":{"Sales":false,"Support":true}}"#.utf8))
        #expect(m == .userActivation(UserActivationMessage(isDelta: true, subscriptionId: "s", userId: "agent", activationsChanged: [.init("Sales", false), .init("Support", true)])))
        #expect(throws: MessageDecodeError.self) {
            try ICWSMessage.decode(text: Array(#"{"__type":"urn:inin.com:activations:userActivationMessage","activationsChanged":{"Sales":"yes"}}"#.utf8))
        }
    }

    /// Each value type as part three lists it; a value of the wrong type or
    /// of an unknown type never fails the message.
    @Test func statisticValues() throws {
        let text = #"""
            {"__type":"urn:inin.com:statistics:statisticValueMessage","isDelta":true,"statisticValueChanges":[
             {"statisticKey":{"statisticIdentifier":"inin.workgroup:InteractionsWaiting","parameterValueItems":[{"parameterTypeId":"ININ.People.WorkgroupStats:Workgroup","value":"Sales"}]},"statisticValue":{"__type":"urn:inin.com:statistics:statisticIntValue","statisticValueType":0,"value":4}},
             {"statisticKey":{"statisticIdentifier":"inin.workgroup:LongestWaitTime","parameterValueItems":[{"parameterTypeId":"ININ.People.WorkgroupStats:Workgroup","value":"Sales"}]},"statisticValue":null},
             {"statisticKey":{"statisticIdentifier":"a","parameterValueItems":[]},"statisticValue":{"__type":"urn:inin.com:statistics:statisticTimeDurationValue","value":"20160622T102319Z"}},
             {"statisticKey":{"statisticIdentifier":"b","parameterValueItems":[]},"statisticValue":{"statisticValueType":9,"value":62.5}},
             {"statisticKey":{"statisticIdentifier":"c","parameterValueItems":[]},"statisticValue":{"statisticValueType":12,"value":2}},
             {"statisticKey":{"statisticIdentifier":"d","parameterValueItems":[]},"statisticValue":{"statisticValueType":0,"value":"four"}},
             {"statisticKey":{"statisticIdentifier":"e","parameterValueItems":[]},"statisticValue":{"__type":"urn:inin.com:statistics:somethingNew","value":1}},
             {"statisticKey":{"statisticIdentifier":"f","parameterValueItems":[]},"statisticValue":[1,2]}
            ]}
            """#
        guard case .statisticValues(let m) = try ICWSMessage.decode(text: Array(text.utf8)) else {
            Issue.record("not a statistics message")
            return
        }
        #expect(m.isDelta && m.changes.count == 8)
        #expect(m.changes[0].value == .int(4) && WorkgroupStatistic(key: m.changes[0].key) == .interactionsWaiting)
        #expect(m.changes[0].key.parameter(WorkgroupStatistic.workgroupParameter) == "Sales")
        #expect(m.changes[1].value == nil)
        #expect(m.changes[2].value == .timestamp("20160622T102319Z", counting: true))
        #expect(m.changes[3].value == .percent(62.5))
        #expect(m.changes[4].value == .error(2))
        for i in 5...7 {
            guard case .unreadable = m.changes[i].value else {
                Issue.record("change \(i): \(String(describing: m.changes[i].value))")
                continue
            }
        }
        // A key without its interval is not the shift figure.
        #expect(WorkgroupStatistic(key: StatisticKey("inin.workgroup:InteractionsAnswered", [.init(WorkgroupStatistic.workgroupParameter, "Sales")])) == nil)
        #expect(WorkgroupStatistic(key: WorkgroupStatistic.answeredThisShift.key(workgroup: "Sales")) == .answeredThisShift)
    }
}
