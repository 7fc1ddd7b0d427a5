import Foundation
import ICWS
import ICWSSimulator
import Testing
import TestSupport

/// The supervisor against a real icws-sim on 127.0.0.1. Backoff never sleeps: the clock is manual.
@Suite(.serialized, .timeLimit(.minutes(2))) struct SupervisorTests {
    let station = StationSettings(kind: .workstation, workstation: "7001", supportedMediaTypes: [1, 2], readyForInteractions: true)

    func alertingIds(_ log: EventLog) -> [String] {
        log.messages.compactMap { m -> [String]? in
            guard case .interactionAlerting(let a) = m else { return nil }
            return a.details.map(\.interactionId)
        }.flatMap { $0 }
    }

    @Test(arguments: [2, 1]) func loginAndDeliveryBySSEAndPolling(messagingVersion: Int) async throws {
        let sim = try await startSimulator { $0.messagingVersion = messagingVersion }
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        let status = await h.supervisor.status
        #expect(status.messagingMode == (messagingVersion >= 2 ? "sse" : "poll"))
        #expect(status.userId == "agent" && status.userDisplayName == "Agent")
        #expect(status.server == "http://127.0.0.1:\(sim.port)")
        // Subscriptions were made: the first messages are the isDelta:false snapshots.
        try await eventually("users snapshot") {
            h.log.messages.contains { if case .users(let u) = $0 { return !u.isDelta && u.added.count == 26 } else { return false } }
        }
        let ids = (0..<20).map { _ in sim.startAlerting() }
        try await eventually("20 alerts") { alertingIds(h.log).suffix(20) == ids[...] }
        #expect(h.log.malformed.isEmpty)
        // Every request after login carried the cookie and the CSRF token (the sim refuses otherwise).
        #expect(!sim.requests.contains { $0.status == 401 })
        await h.stop()
        #expect(sim.requests.last?.method == "DELETE", "logs out on stop")
    }

    @Test func badCredentialsStopAndWait() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim, password: "wrong-password")
        try await h.waitForState(.stopped)
        #expect(await h.supervisor.status.lastError == "error.request.connection.authenticationFailure")
        try await Task.sleep(for: .milliseconds(200))
        #expect(sim.loginCount == 0 && sim.requests.count == 1, "does not hammer the server")
        #expect(!h.logs.text.contains("wrong-password"))
        await h.stop()
    }

    @Test func stationCommandsAndRestoreAfterShouldReconnect() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        try await h.supervisor.connectStation(station)
        #expect(sim.currentStation == station)
        try await h.supervisor.setReady(false)
        #expect(sim.currentStation?.readyForInteractions == false)
        let firstSession = sim.liveSessionIds
        sim.inject(.down(shouldReconnect: true, reason: "The server is shutting down."))
        try await eventually("a new session") { sim.liveSessionIds.count == 1 && sim.liveSessionIds != firstSession }
        try await h.waitForState(.connected)
        // Station re-applied with the last ready flag, subscriptions re-made.
        try await eventually("station restored") { sim.currentStation == StationSettings(kind: .workstation, workstation: "7001", supportedMediaTypes: [1, 2], readyForInteractions: false) }
        try await eventually("subscriptions restored") {
            let paths = sim.requests.suffix(8).map(\.path)
            return paths.contains { $0.hasSuffix("/interaction-alerting") } && paths.contains { $0.hasSuffix("/connection/station") }
                && paths.contains { $0.contains("/configuration/users/") }
        }
        #expect(await h.supervisor.status.reconnectCount == 1)
        #expect(h.clock.sleeps.count == 1, "one backoff wait before the new session")
        #expect(await h.supervisor.station.ready == false)
        await h.stop()
    }

    @Test func downWithoutShouldReconnectStopsUntilReconnect() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        sim.inject(.down(shouldReconnect: nil, reason: "You have been logged off by an administrator."))
        try await h.waitForState(.stopped)
        #expect(await h.supervisor.status.lastError == "You have been logged off by an administrator.")
        try await Task.sleep(for: .milliseconds(100))
        #expect(sim.loginCount == 1)
        h.supervisor.reconnect()
        try await h.waitForState(.connected)
        #expect(sim.loginCount == 2)
        await h.stop()
    }

    @Test func disconnectLogsOutAndStops() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        await h.supervisor.disconnect()
        #expect(await h.supervisor.status.state == .stopped)
        #expect(sim.liveSessionIds.isEmpty)
        do {
            try await h.supervisor.connectStation(station)
            Issue.record("expected notConnected")
        } catch { #expect(error.kind == .notConnected) }
        h.supervisor.reconnect()
        try await h.waitForState(.connected)
        await h.stop()
    }

    @Test func challengeLeadsToNewLoginAtTheSameHost() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        try await h.supervisor.connectStation(station)
        sim.inject(.expire(challenge: true, location: nil))
        try await eventually("second login") { sim.loginCount == 2 }
        try await h.waitForState(.connected)
        try await eventually("station restored") { sim.currentStation == station }
        await h.stop()
    }

    @Test func unauthorizedWithoutChallengeLogsInAgain() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        sim.inject(.expire(challenge: false, location: nil))
        try await eventually("second login") { sim.loginCount == 2 }
        try await h.waitForState(.connected)
        await h.stop()
    }

    @Test func challengePointingElsewhereIsFollowed() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        sim.inject(.expire(challenge: true, location: "http://localhost:\(sim.port)/ICWS/connection"))
        try await eventually("login at localhost") { sim.loginCount == 2 }
        try await h.waitForState(.connected)
        let login = sim.requests.last { $0.method == "POST" && $0.path.lowercased() == "/icws/connection" }
        #expect(login?.host == "localhost:\(sim.port)")
        #expect(await h.supervisor.status.server == "http://localhost:\(sim.port)")
        await h.stop()
    }

    @Test func unavailableWalksAlternates() async throws {
        let sim = try await startSimulator()
        sim.inject(.unavailable(alternates: ["nowhere.invalid", "localhost"], acceptHosts: ["localhost"], count: nil))
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        let logins = sim.requests.filter { $0.path.lowercased() == "/icws/connection" }
        #expect(logins.first?.status == 503)
        #expect(logins.last?.host == "localhost:\(sim.port)" && logins.last?.status == 201)
        #expect(h.clock.sleeps.isEmpty, "alternates are tried in the same round, without waiting")
        await h.stop()
    }

    @Test func unavailableEverywhereBacksOffWithGrowingDelays() async throws {
        let sim = try await startSimulator()
        sim.inject(.unavailable(alternates: [], acceptHosts: [], count: 8))
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        // 503s are the busy backoff; random() is 0.5, so each wait is the middle
        // of 3 s to the ceiling: 10 s for the first 20 s, then half the outage's age.
        #expect(h.clock.sleeps == [6500, 6500, 6500, 6500, 8000, 10000, 12500, 15625].map { Duration.milliseconds($0) })
        #expect(await h.supervisor.status.reconnectCount == 0)
        await h.stop()
    }

    @Test func streamResetKeepsTheSessionAndLosesNothing() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        try await eventually("stream open") { sim.openStreamCount == 1 }
        var ids: [String] = []
        for round in 0..<3 {
            ids += (0..<5).map { _ in sim.startAlerting() }
            sim.inject(.resetStreams)
            ids += (0..<5).map { _ in sim.startAlerting() }
            let expected = ids
            try await eventually("round \(round) delivered") { alertingIds(h.log).suffix(expected.count) == expected[...] }
        }
        #expect(sim.loginCount == 1, "a broken stream is reopened on the same session")
        let deltas = h.log.messages.compactMap { m -> [String]? in
            guard case .interactionAlerting(let a) = m, a.isDelta else { return nil }
            return a.details.map(\.interactionId)
        }.flatMap { $0 }
        #expect(Set(deltas).count == deltas.count, "no message twice")
        // The snapshot after the last reset comes after that round's messages: wait for it.
        try await eventually("a fresh snapshot after each reset") {
            h.log.messages.filter { if case .interactionAlerting(let a) = $0 { !a.isDelta } else { false } }.count >= 4
        }
        await h.stop()
    }

    /// icws-sim's prepared burst (the bench's maximum rate) reaches the client
    /// as emitted messages do: in order, each once, across its runs of 512,
    /// with one simSequence each; an empty object and a non-object too.
    @Test func preparedMessagesArriveLikeEmittedOnes() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        try await eventually("stream open") { sim.openStreamCount == 1 }
        let ids = (0..<1_300).map { "p\($0)" }
        func alert(_ id: String) -> JSONValue {
            [
                "__type": .string(ICWSMessage.TypeURN.interactionAlerting), "isDelta": true,
                "alertingInteractionDetails": [
                    ["interactionId": .string(id), "interactionType": "Call", "name": "Prepared \"quoted\"", "alertType": 5, "alertAction": 2, "autoAnswer": false]
                ],
            ]
        }
        let prepared = sim.prepare(ids.map(alert) + [[:], "not an object"])
        #expect(prepared.count == ids.count + 1, "a non-object is left out")
        let before = sim.deliveries.count
        let emitted = sim.emit(alert("after"))
        sim.emit(prepared)
        try await eventually("all delivered") { alertingIds(h.log).suffix(ids.count) == ids[...] }
        #expect(alertingIds(h.log).filter { $0.hasPrefix("p") || $0 == "after" } == ["after"] + ids)
        // The empty object arrives as {"simSequence":N}: a message without __type.
        try await eventually("the empty object") { !h.log.malformed.isEmpty }
        #expect(h.log.malformed.map(\.field) == ["__type"])
        // Keep-alives (every 200 ms here) may follow with sequences of their own: only this run's range counts.
        let range = emitted[0]...(emitted[0] + UInt64(ids.count) + 1)
        let delivered = sim.deliveries.dropFirst(before).map(\.sequence).filter { range.contains($0) }
        #expect(delivered == Array(range), "one simSequence each, in order")
        await h.stop()
    }

    @Test func stalledStreamIsDetected() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim) { $0.stallTimeout = .milliseconds(600) }
        try await h.waitForState(.connected)
        try await eventually("stream open") { sim.openStreamCount == 1 }
        let before = sim.requests.count
        sim.inject(.stall(.seconds(2)))
        try await eventually("stall noticed", timeout: .seconds(5)) {
            await h.supervisor.status.lastError.contains("stalled")
        }
        sim.inject(.clear)
        let id = sim.startAlerting()
        try await eventually("delivery after the stall") { alertingIds(h.log).contains(id) }
        #expect(sim.requests.count > before)
        await h.stop()
    }

    @Test func malformedUnknownAndHugeMessagesDoNotEndTheSession() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        try await eventually("users snapshot") { h.log.messages.contains { if case .users = $0 { true } else { false } } }
        sim.inject(.malformed)
        sim.inject(.unknownMessage)
        sim.inject(.huge(bytes: 8 << 20))
        let id = sim.startAlerting()
        try await eventually("later message") { alertingIds(h.log).contains(id) }
        #expect(h.log.malformed.count == 2)
        #expect(h.log.messages.contains { if case .unknown(let t, _) = $0 { t == "urn:inin.com:example:notKnownMessage" } else { false } })
        #expect(h.log.messages.contains { if case .users(let u) = $0 { (u.changed.first?.properties.first?.1.stringValue?.count ?? 0) > 8_000_000 } else { false } })
        #expect(sim.loginCount == 1)
        await h.stop()
    }

    @Test func serverRestartEndsInARestoredSession() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        try await h.supervisor.connectStation(station)
        sim.inject(.restart(downFor: .milliseconds(300)))
        try await eventually("new session", timeout: .seconds(15)) { sim.liveSessionIds.count == 1 && sim.currentStation == station }
        try await h.waitForState(.connected)
        // On the new session: station and alerting subscriptions, the station, then
        // the users subscription (whose snapshot can take the server a while).
        let sessionId = try #require(sim.liveSessionIds.first)
        try await eventually("users subscribed again") {
            sim.requests.contains { $0.method == "PUT" && $0.path.contains("/\(sessionId)/messaging/subscriptions/configuration/users/") }
        }
        let puts = sim.requests.filter { $0.method == "PUT" && $0.path.hasPrefix("/icws/\(sessionId)/") }.map { $0.path.replacing("/icws/\(sessionId)/", with: "") }
        #expect(
            puts == [
                "messaging/subscriptions/connection/station", "messaging/subscriptions/interaction-alerting", "connection/station",
                "messaging/subscriptions/configuration/users/icws-bridge-users",
            ], "\(puts)")
        await h.stop()
    }

    @Test func stationErrorsAreTyped() async throws {
        let sim = try await startSimulator { $0.noLicenseStations = ["7003"] }
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        do {
            try await h.supervisor.connectStation(StationSettings(kind: .workstation, workstation: "9999"))
            Issue.record("expected unknownStation")
        } catch { #expect(error.errorId == "error.request.connection.unknownStation" && error.status == 400) }
        do {
            try await h.supervisor.connectStation(StationSettings(kind: .workstation, workstation: "7003"))
            Issue.record("expected noLicense")
        } catch { #expect(error.errorId == "error.request.connection.noLicense") }
        do {
            try await h.supervisor.setReady(true)
            Issue.record("expected noStation")
        } catch { #expect(error == .noStation) }
        #expect(await h.supervisor.status.state == .connected, "errors do not end the session")
        try await h.supervisor.connectStation(StationSettings(kind: .remoteNumber, remoteNumber: "+13175550100", persistentConnection: true))
        let info = try await h.supervisor.stationInformation()
        #expect(info.sipPassword?.value == "sip-secret-+13175550100")
        try await h.supervisor.disconnectStation()
        #expect(sim.currentStation == nil)
        await h.stop()
    }

    @Test func reloadedSubscriptionsAreRemadeOnTheSameSession() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        // The first users subscription is made (its snapshot came) before the reload.
        try await eventually("users subscribed") { h.log.messages.contains { if case .users = $0 { true } else { false } } }
        var config = SupervisorConfiguration(servers: [ServerURL(string: "http://127.0.0.1:\(sim.port)")!], userId: "agent", password: Secret("secret"))
        config.subscriptions = SubscriptionSettings(alertingAttributeNames: ["Eic_CallId"], users: UsersSubscription(subscriptionId: "other", configurationIds: ["user0001"], properties: ["extension"]))
        config.stallTimeout = .seconds(2)
        await h.supervisor.update(configuration: config)
        try await eventually("new users subscription") {
            h.log.messages.contains { if case .users(let u) = $0 { u.subscriptionId == "other" && u.added.map(\.id) == ["user0001"] } else { false } }
        }
        #expect(sim.loginCount == 1)
        #expect(sim.requests.contains { $0.method == "DELETE" && $0.path.hasSuffix("/configuration/users/icws-bridge-users") })
        await h.stop()
    }

    @Test func secretsNeverReachTheLogs() async throws {
        let sim = try await startSimulator()
        let h = try SupervisorHarness.start(sim: sim)
        try await h.waitForState(.connected)
        try await h.supervisor.connectStation(station)
        _ = try await h.supervisor.stationInformation()
        sim.inject(.expire(challenge: true, location: nil))
        try await eventually("second login") { sim.loginCount == 2 }
        try await h.waitForState(.connected)
        await h.stop()
        let logs = h.logs.text
        #expect(!logs.isEmpty)
        #expect(!logs.contains("secret"), "password or sipPassword in logs")
        let status = "\(h.log.statuses)"
        #expect(!status.contains("secret"))
    }
}
