import ArgumentParser
import Foundation
import ICWSSimulator
import Logging

@main
struct IcwsSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "icws-sim",
        abstract: "A fake ICWS server for icws-bridge's tests, demo and benchmarks.",
        discussion: """
            Speaks the ICWS subset icws-bridge uses over plain HTTP: POST /icws/connection \
            (password login; a bad password gives the real 400 authenticationFailure), cookie + \
            ININ-ICWS-CSRF-Token checks (missing or wrong: 401 with WWW-Authenticate: ICWS realm="ICWS" \
            location="/ICWS/connection"), GET/DELETE /icws/{id}/connection, PUT/GET/DELETE \
            /icws/{id}/connection/station (unknownStation, missingRequiredParameter, noLicense), the \
            station, interaction-alerting, users and queue subscriptions (first message isDelta:false; \
            queues: only the session user's own, queueType 1), the interaction actions POST \
            /icws/{id}/interactions/{iid}/{pickup|disconnect|hold|mute|send-digits|blind-transfer|\
            send-to-voicemail}, POST /icws/{id}/interactions (createCallParameters: an outbound call, \
            proceeding then connected), agent status (GET/PUT /icws/{id}/status/user-statuses/{user}: \
            the PUT answers 202 {"requestId"} and about 100 ms later applies the change and sends \
            asyncOperationCompletedMessage; GET /icws/{id}/status/status-messages and \
            status-messages-user-access/{user}; the subscriptions status/user-statuses {"userIds"}, \
            status/status-messages and status/status-messages-user-access {"userIds"}; catalogue: \
            Available, "Available, No ACD", At Lunch, Do Not Disturb, Follow Up, "ACD - Agent Not \
            Answering" (not selectable), Gone Home (not in the users' access lists)), and \
            /icws/{id}/messaging/messages as server-sent events (messaging >= 2) or short polling.

            Every message carries "simSequence", a number that grows by one per message.

            Admin endpoints (JSON bodies):
              POST /sim/fault {"kind": K, ...}   inject a fault; K is one of
                down        {"shouldReconnect": true|false, "reason": "..."}  session down message
                expire      {"challenge": true|false, "location": "http://host:port/icws/connection"}
                            later calls get 401 (with or without the ICWS challenge)
                unavailable {"alternates": ["localhost"], "acceptHosts": ["localhost"], "count": N}
                            logins via other hosts get 503 with alternateHostList
                reset       end every message stream at once (the session stays)
                stall       {"seconds": S}  streams and polls send nothing for S seconds
                malformed   queue invalid JSON and a message with bad fields
                huge        {"bytes": N}  queue a usersMessage of about N bytes
                unknown     queue a message of a type the bridge does not know
                restart     {"seconds": S}  forget all sessions, refuse logins for S seconds
                queueSnapshotMissing  the next queue snapshot leaves out its first interaction
                queueFaulted          every queue subscription gets state 3 (Faulted) and stops
                queueOddValues        queue an interactionsChanged with non-string attribute values
                status-completion-error  the next status PUT gets 202, then a completion with
                                      "error" {"errorId": "error.status.sim"}; the status stays
                status-no-completion  the next status PUT gets 202 and nothing more; the status stays
                status-immediate      the next status PUT gets 200 without a requestId, applied at once
                subscription-faulted  {"subscription": "status/user-statuses"}  every session with that
                                      subscription (path after messaging/subscriptions/, e.g.
                                      connection/station, interaction-alerting, configuration/users/ID,
                                      status/status-messages, queues/ID; "queues" alone: all) gets a
                                      subscriptionStateMessage (queues: queueSubscriptionStateMessage)
                                      with state 3 and loses the subscription
                silent      every stream open now sends nothing (no events, no :ping) and stays open
                            until clear; its messages wait for the session's next stream
                clear       remove standing faults (unavailable, restart, stall, silent,
                            queueSnapshotMissing, the status-* faults)
              POST /sim/alert {"name": "...", "address": "..."}   a call starts alerting
              POST /sim/stop-alert {"interactionId": "..."}       it stops (default: oldest)
              POST /sim/call {"user": "agent", "name": "...", "address": "..."}
                                                                  an inbound call alerts on the user's queue
              POST /sim/hangup {"interactionId": "..."}           its remote party hangs up
              POST /sim/user {"id": "user0001", "property": "statusText", "value": "Lunch"}
              POST /sim/status {"user": "agent", "statusId": "Follow Up", "notes": "..."}
                                                                  the server changes a user's status
              POST /sim/status-access {"user": "agent", "statusIds": ["Available", ...]}
                                                                  replace the statuses a user may select
              POST /sim/effective-station {"user": "agent"}       send effectiveStationChangeMessage
              POST /sim/queue-call {"workgroup": "Sales"}         an ACD call waits in Sales (its figures move)
              POST /sim/activation {"workgroup": "Sales", "activated": false}   an administrator's change
              POST /sim/drop-consult {"consultId": "consult-1"}  the consulted party hangs up
              POST /sim/call-options {...}   how open points of part three are answered: wrapUpStatus
                   (201|200), consultLeg (beforeReply|afterReply|never), markConsult, speakToBoth,
                   parentNaming (parentRow|conferenceId), conferenceIdIsParentRow, autoDisconnectLast,
                   defaultPauseSeconds, untilResumedValue, statisticsFirstIsDelta, activationForbidden
              POST /sim/emit {any ICWS message}                   queue it to every session
              POST /sim/traffic {"count": N}                      N random traffic events
              GET  /sim/state                                     sessions, subscriptions, counters
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one and prints it).") var port = 8018
    @Option(help: "An account as USER:PASSWORD (repeatable; default agent:secret).") var account: [String] = []
    @Option(help: "The messaging feature version to report (2 or more enables server-sent events).")
    var messagingVersion = 2
    @Option(help: "Workstation names that exist (repeatable; default 7001 7002 7003).") var station: [String] = []
    @Option(help: "Workstations whose connection fails with noLicense (repeatable).") var noLicenseStation: [String] = []
    @Option(help: "alternateHostList sent with a successful login (repeatable).") var alternateHost: [String] = []
    @Option(help: "Users in the directory besides the accounts.") var directorySize = 25
    @Option(help: "Random traffic in messages per second (0 for none).") var trafficRate: Double = 0
    @Option(help: "Seconds between :ping keep-alives on an idle stream.") var keepAlive: Double = 10
    @Option(help: "Seed of the random traffic.") var seed: UInt64 = 1
    @Option(help: "Serve HTTPS with this PEM certificate (chain); needs --tls-key.") var tlsCert: String?
    @Option(help: "The PEM private key of --tls-cert.") var tlsKey: String?

    func validate() throws {
        for a in account where !a.contains(":") { throw ValidationError("--account must be USER:PASSWORD") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard keepAlive > 0, trafficRate >= 0 else { throw ValidationError("--keep-alive must be > 0 and --traffic-rate >= 0") }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
    }

    func run() async throws {
        var config = SimulatorConfiguration()
        config.host = host
        config.port = port
        if !account.isEmpty {
            config.accounts = [:]
            for a in account {
                let parts = a.split(separator: ":", maxSplits: 1)
                config.accounts[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
        }
        config.messagingVersion = messagingVersion
        if !station.isEmpty { config.stations = Set(station) }
        config.noLicenseStations = Set(noLicenseStation)
        config.alternateHosts = alternateHost
        config.directorySize = directorySize
        config.trafficRate = trafficRate
        config.keepAlive = .milliseconds(Int64(keepAlive * 1000))
        config.seed = seed
        if let tlsCert, let tlsKey { config.tls = (tlsCert, tlsKey) }
        let sim = ICWSSimulator(configuration: config)
        _ = try await sim.start()
        // Unbuffered, so that a script reading a pipe sees the port at once.
        FileHandle.standardOutput.write(Data("icws-sim listening on \(sim.baseURL)\n".utf8))
        try await sim.run()
    }
}
