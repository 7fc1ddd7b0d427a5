import BridgeContract
import DBusKit
import Testing

@testable import Notifier

/// The notifier's state machine alone: no bus, no clock.
@Suite struct NotifierMachineTests {
    static let dunst = ServerCapabilities(["actions", "body", "body-markup", "body-hyperlinks"])

    static func path(_ id: String) -> String { BridgeNames.interactionPrefix + id }

    /// Interaction properties as the bridge sends them (`a{sv}`).
    static func props(
        state: UInt32? = 2, direction: UInt32? = 1, type: String? = "Call", name: String? = "ACME Corp", address: String? = "+13175550100",
        attributes: [(String, String)]? = nil
    ) -> DBusValue {
        var p: [(String, DBusValue)] = []
        if let state { p.append(("State", .uint32(state))) }
        if let direction { p.append(("Direction", .uint32(direction))) }
        if let type { p.append(("Type", .string(type))) }
        if let name { p.append(("RemoteName", .string(name))) }
        if let address { p.append(("RemoteAddress", .string(address))) }
        if let attributes { p.append(("Attributes", .stringDict(attributes))) }
        return .vardict(p)
    }

    /// A machine with the server there and the bridge synced (empty).
    static func ready(_ capabilities: ServerCapabilities = dunst, maxShown: Int = 4) -> NotifierMachine {
        var m = NotifierMachine(maxShown: maxShown)
        #expect(m.handle(.serverAppeared(capabilities)).isEmpty)
        #expect(m.handle(.bridgeSynced([], doNotDisturb: false)).isEmpty)
        return m
    }

    static func notifies(_ actions: [NotifierMachine.Action]) -> [(String, UInt64, NotificationRequest)] {
        actions.compactMap { if case .notify(let p, let g, let r) = $0 { return (p, g, r) } else { return nil } }
    }

    /// Rings a call and answers its Notify with `id`.
    static func show(_ m: inout NotifierMachine, _ id: String, notificationId: UInt32, _ properties: DBusValue = props()) {
        let actions = m.handle(.interactionAdded(path: path(id), properties: properties))
        let n = notifies(actions)
        #expect(n.count == 1, "\(actions)")
        guard let (p, g, _) = n.first else { return }
        #expect(m.handle(.notifyReplied(path: p, generation: g, id: notificationId)).isEmpty)
    }

    @Test func aRingingCallIsOneNotificationWithTheDesktopsConventions() throws {
        var m = Self.ready()
        let actions = m.handle(.interactionAdded(path: Self.path("1001"), properties: Self.props()))
        let (path, _, r) = try #require(Self.notifies(actions).first)
        #expect(actions.count == 1 && path == Self.path("1001"))
        #expect(r.appName == "icws-bridge" && r.icon == "call-start" && r.replacesId == 0)
        #expect(r.summary == "Call from ACME Corp")
        #expect(r.body == "+13175550100")
        #expect(r.actions.map(\.key) == ["default", "answer", "decline"] && r.actions.map(\.label) == ["Answer", "Answer", "Decline"])
        #expect(r.urgency == 2 && r.category == "x-gnome.call" && r.resident && r.expireTimeout == 0)
        // On the bus: susssasa{sv}i, urgency a byte, category a string, no desktop-entry.
        let args = r.arguments
        #expect(args.map(\.signature).joined() == "susssasa{sv}i")
        #expect(args[5] == .strings(["default", "Answer", "answer", "Answer", "decline", "Decline"]))
        #expect(args[6]["urgency"] == .byte(2) && args[6]["category"] == .string("x-gnome.call") && args[6]["resident"] == .bool(true))
        #expect(args[6]["desktop-entry"] == nil && args[7] == .int32(0))
        // More properties of the same call do not show it twice.
        #expect(m.handle(.interactionChanged(path: Self.path("1001"), properties: .vardict([("Muted", .bool(false))]))).isEmpty)
        #expect(m.handle(.notifyReplied(path: path, generation: m.generation, id: 7)).isEmpty)
        #expect(m.notificationId(for: path) == 7)
        #expect(m.handle(.interactionChanged(path: path, properties: .vardict([("Capabilities", .uint32(4))]))).isEmpty)
    }

    @Test func offeringRingsTooButOutboundAndOtherStatesDoNot() {
        var m = Self.ready()
        #expect(Self.notifies(m.handle(.interactionAdded(path: Self.path("o"), properties: Self.props(state: 1)))).count == 1)
        #expect(m.handle(.interactionAdded(path: Self.path("out"), properties: Self.props(direction: 2))).isEmpty, "outbound")
        #expect(m.handle(.interactionAdded(path: Self.path("unk"), properties: Self.props(direction: 0))).isEmpty, "direction unknown")
        for state: UInt32 in [0, 3, 4, 5, 7, 10, 11, 99] {
            #expect(m.handle(.interactionAdded(path: Self.path("s\(state)"), properties: Self.props(state: state))).isEmpty, "state \(state)")
        }
        // Wrong types are ignored, not trusted: State as a string, Direction as a byte.
        let odd = DBusValue.vardict([("State", .string("2")), ("Direction", .byte(1)), ("RemoteName", .int32(5))])
        #expect(m.handle(.interactionAdded(path: Self.path("odd"), properties: odd)).isEmpty)
    }

    @Test func theQueueIsShownWhenTheBridgePublishesIt() throws {
        var m = Self.ready(maxShown: 10)
        let withQueue = m.handle(.interactionAdded(path: Self.path("q"), properties: Self.props(attributes: [("eic_workgroupname", "Support"), ("Eic_State", "A")])))
        #expect(try #require(Self.notifies(withQueue).first).2.body == "+13175550100 · Support")
        let blank = m.handle(.interactionAdded(path: Self.path("b"), properties: Self.props(attributes: [("Eic_WorkgroupName", " \t ")])))
        #expect(try #require(Self.notifies(blank).first).2.body == "+13175550100", "a blank queue is no queue")
        let noName = m.handle(.interactionAdded(path: Self.path("n"), properties: Self.props(name: "", attributes: [("Eic_WorkgroupName", "Sales")])))
        let r = try #require(Self.notifies(noName).first).2
        #expect(r.summary == "Call from +13175550100" && r.body == "Sales", "the number becomes the caller, not repeated")
        let nothing = m.handle(.interactionAdded(path: Self.path("x"), properties: Self.props(name: nil, address: nil)))
        #expect(try #require(Self.notifies(nothing).first).2.summary == "Call from an unknown caller")
        let chat = m.handle(.interactionAdded(path: Self.path("c"), properties: Self.props(type: "Chat")))
        let c = try #require(Self.notifies(chat).first).2
        #expect(c.summary == "Chat from ACME Corp" && c.category == "im.received")
    }

    @Test func serverTextIsOneCleanLineAndEscapedOnlyWhereMarkupIsRead() throws {
        var m = Self.ready()
        let hostile = Self.props(
            name: "Evil <b>Boss</b> & Co\n\u{1B}[31mSecond line\u{0}\u{202E}gnp.exe", address: "+1<i>317</i>\r\n\t555\u{7F}",
            attributes: [("Eic_WorkgroupName", "<a href='http://x'>Support</a>")])
        let r = try #require(Self.notifies(m.handle(.interactionAdded(path: Self.path("h"), properties: hostile))).first).2
        // The summary is plain text by the spec (servers escape it): cleaned, not escaped.
        #expect(r.summary == "Call from Evil <b>Boss</b> & Co [31mSecond line gnp.exe", "\(r.summary)")
        #expect(!r.summary.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0.value == 0x202E })
        #expect(r.body == "+1&lt;i&gt;317&lt;/i&gt; 555 · &lt;a href='http://x'&gt;Support&lt;/a&gt;", "\(r.body)")
        // Without body-markup the body is plain text too.
        var plain = Self.ready(ServerCapabilities(["actions", "body"]))
        let p = try #require(Self.notifies(plain.handle(.interactionAdded(path: Self.path("h"), properties: hostile))).first).2
        #expect(p.body == "+1<i>317</i> 555 · <a href='http://x'>Support</a>")
        // Long texts are cut (memory bounded on arrival, the line at 256 characters).
        let huge = String(repeating: "A", count: 5_000_000)
        let l = try #require(Self.notifies(plain.handle(.interactionAdded(path: Self.path("l"), properties: Self.props(name: huge, address: huge)))).first).2
        #expect(l.summary.count == "Call from ".count + NotificationText.maxFieldLength && l.summary.hasSuffix("…"))
        #expect(l.body.count == NotificationText.maxFieldLength && l.body.hasSuffix("…"))
        let stored = try #require(plain.tracked[Self.path("l")]).info.remoteName
        #expect(stored.utf8.count <= 1024)
    }

    @Test func textCleaningRules() {
        #expect(NotificationText.clean("  a \n\n b\u{2028}c  ") == "a b c")
        #expect(NotificationText.clean("\u{200B}\u{FEFF}x\u{2066}y\u{2069}\u{200F}") == "xy")
        #expect(NotificationText.clean("héllo wörld 👩‍👩‍👧", limit: 64) == "héllo wörld 👩‍👩‍👧")
        #expect(NotificationText.clean("abcdef", limit: 4) == "abc…")
        #expect(NotificationText.clean("", limit: 4) == "")
        #expect(NotificationText.escapeMarkup("a&b<c>d&amp;") == "a&amp;b&lt;c&gt;d&amp;amp;")
        #expect(NotificationText.escapeMarkup("plain") == "plain")
    }

    @Test func aServerWithoutActionsOrBodyGetsWhatItCanShow() throws {
        var m = Self.ready(ServerCapabilities(["body"]))
        let r = try #require(Self.notifies(m.handle(.interactionAdded(path: Self.path("1"), properties: Self.props()))).first).2
        #expect(r.actions.isEmpty && !r.resident && r.arguments[5] == .strings([]))
        var bare = Self.ready(ServerCapabilities([]))
        let b = try #require(Self.notifies(bare.handle(.interactionAdded(path: Self.path("1"), properties: Self.props(attributes: [("Eic_WorkgroupName", "Support")])))).first).2
        #expect(b.summary == "Call from ACME Corp (+13175550100 · Support)" && b.body.isEmpty)
    }

    @Test func leavingAlertingOrGoingAwayCloses() {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        Self.show(&m, "2", notificationId: 12)
        Self.show(&m, "3", notificationId: 13)
        Self.show(&m, "4", notificationId: 14)
        #expect(m.handle(.interactionChanged(path: Self.path("1"), properties: .vardict([("State", .uint32(3))]))) == [.close(id: 11)], "answered")
        #expect(m.handle(.interactionChanged(path: Self.path("1"), properties: .vardict([("State", .uint32(4))]))).isEmpty, "closed once")
        #expect(m.handle(.interactionRemoved(path: Self.path("2"))) == [.close(id: 12)])
        #expect(m.handle(.interactionRemoved(path: Self.path("2"))).isEmpty)
        // The bridge goes: everything it rang goes with it.
        #expect(m.handle(.bridgeVanished) == [.close(id: 13), .close(id: 14)])
        #expect(m.shownIds.isEmpty && m.interactionPaths.isEmpty)
        // It comes back: the snapshot is the truth; what rings shows again.
        let back = m.handle(.bridgeSynced([.init(path: Self.path("3"), properties: Self.props()), .init(path: Self.path("5"), properties: Self.props(state: 3))], doNotDisturb: false))
        #expect(Self.notifies(back).map(\.0) == [Self.path("3")])
    }

    @Test func aSnapshotReplacesTheSet() {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        Self.show(&m, "2", notificationId: 12)
        // 1 is gone, 2 was answered meanwhile, 3 rings.
        let actions = m.handle(.bridgeSynced([.init(path: Self.path("2"), properties: Self.props(state: 3)), .init(path: Self.path("3"), properties: Self.props())], doNotDisturb: false))
        #expect(actions.contains(.close(id: 11)) && actions.contains(.close(id: 12)))
        #expect(Self.notifies(actions).map(\.0) == [Self.path("3")])
        #expect(m.interactionPaths == [Self.path("2"), Self.path("3")])
    }

    @Test func whatTheCallerSaysChangesTheNotificationInPlace() throws {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11, Self.props(name: ""))
        let actions = m.handle(.interactionChanged(path: Self.path("1"), properties: .vardict([("RemoteName", .string("Jane Doe"))])))
        let (_, g, r) = try #require(Self.notifies(actions).first)
        #expect(r.replacesId == 11 && r.summary == "Call from Jane Doe" && r.body == "+13175550100")
        // While the replace is out, Answer still works on the shown one.
        #expect(m.handle(.actionInvoked(id: 11, key: "answer")) == [.pickup(path: Self.path("1"))])
        #expect(m.handle(.notifyReplied(path: Self.path("1"), generation: g, id: 11)).isEmpty)
        #expect(m.notificationId(for: Self.path("1")) == 11)
    }

    @Test func changesWhileNotifyIsOutAreAppliedAtTheAnswer() throws {
        var m = Self.ready()
        let first = m.handle(.interactionAdded(path: Self.path("1"), properties: Self.props()))
        let (_, g, _) = try #require(Self.notifies(first).first)
        // It stops ringing before the id is known: closed as soon as it is.
        #expect(m.handle(.interactionChanged(path: Self.path("1"), properties: .vardict([("State", .uint32(3))]))).isEmpty)
        #expect(m.handle(.notifyReplied(path: Self.path("1"), generation: g, id: 21)) == [.close(id: 21)])
        // Removed before the answer: closed too.
        let second = m.handle(.interactionAdded(path: Self.path("2"), properties: Self.props()))
        let (_, g2, _) = try #require(Self.notifies(second).first)
        #expect(m.handle(.interactionRemoved(path: Self.path("2"))).isEmpty)
        #expect(m.handle(.notifyReplied(path: Self.path("2"), generation: g2, id: 22)) == [.close(id: 22)])
        // A refused Notify is not retried in a loop, and frees its slot.
        let third = m.handle(.interactionAdded(path: Self.path("3"), properties: Self.props()))
        let (_, g3, _) = try #require(Self.notifies(third).first)
        #expect(m.handle(.notifyReplied(path: Self.path("3"), generation: g3, id: nil)).isEmpty)
        #expect(m.handle(.interactionChanged(path: Self.path("3"), properties: .vardict([("RemoteName", .string("x"))]))).isEmpty)
    }

    @Test func doNotDisturbClosesAndSilencesThenShowsWhatStillRings() throws {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        #expect(m.handle(.doNotDisturbChanged(true)) == [.close(id: 11)])
        #expect(m.handle(.interactionAdded(path: Self.path("2"), properties: Self.props())).isEmpty, "silent")
        #expect(m.handle(.interactionAdded(path: Self.path("3"), properties: Self.props())).isEmpty)
        #expect(m.handle(.interactionRemoved(path: Self.path("3"))).isEmpty)
        #expect(m.handle(.doNotDisturbChanged(true)).isEmpty)
        // Off again: what still rings (1 and 2, oldest first) is shown; 3 is gone.
        let back = m.handle(.doNotDisturbChanged(false))
        #expect(Self.notifies(back).map(\.0) == [Self.path("1"), Self.path("2")])
        // A snapshot can carry DND too.
        var s = NotifierMachine()
        _ = s.handle(.serverAppeared(Self.dunst))
        #expect(s.handle(.bridgeSynced([.init(path: Self.path("9"), properties: Self.props())], doNotDisturb: true)).isEmpty)
        #expect(s.doNotDisturb)
        // DND while Notify is out: closed at the answer.
        var p = Self.ready()
        let (_, g, _) = try #require(Self.notifies(p.handle(.interactionAdded(path: Self.path("1"), properties: Self.props()))).first)
        #expect(p.handle(.doNotDisturbChanged(true)).isEmpty)
        #expect(p.handle(.notifyReplied(path: Self.path("1"), generation: g, id: 5)) == [.close(id: 5)])
    }

    @Test func actionsCallPickupOrDisconnectAndUnknownIdsAreIgnored() {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        #expect(m.handle(.actionInvoked(id: 11, key: "default")) == [.pickup(path: Self.path("1"))])
        #expect(m.handle(.actionInvoked(id: 11, key: "answer")) == [.pickup(path: Self.path("1"))])
        #expect(m.handle(.actionInvoked(id: 11, key: "decline")) == [.disconnect(path: Self.path("1"))])
        #expect(m.handle(.actionInvoked(id: 11, key: "rm -rf")).isEmpty, "unknown key")
        #expect(m.handle(.actionInvoked(id: 99, key: "answer")).isEmpty, "another application's notification")
        #expect(m.handle(.notificationClosed(id: 99, reason: 2)).isEmpty)
        // Closed by us: forgotten at once, its later NotificationClosed and actions do nothing.
        #expect(m.handle(.interactionChanged(path: Self.path("1"), properties: .vardict([("State", .uint32(3))]))) == [.close(id: 11)])
        #expect(m.handle(.notificationClosed(id: 11, reason: 3)).isEmpty)
        #expect(m.handle(.actionInvoked(id: 11, key: "answer")).isEmpty)
    }

    /// Answer or Decline on a notification of a call that no longer rings does nothing.
    @Test func buttonsOfACallThatStoppedRingingDoNothing() {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        // The server's ActionInvoked crossed the bridge's State change: the close is on its way.
        #expect(m.handle(.interactionChanged(path: Self.path("1"), properties: .vardict([("State", .uint32(4))]))) == [.close(id: 11)])
        #expect(m.handle(.actionInvoked(id: 11, key: "decline")).isEmpty)
        #expect(m.handle(.actionInvoked(id: 11, key: "answer")).isEmpty)
    }

    @Test func aDismissedNotificationIsNotShownAgain() {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        // Closed once more: a Notify(replaces: 11) that crossed the dismiss may have shown it anew as 11.
        #expect(m.handle(.notificationClosed(id: 11, reason: 2)) == [.close(id: 11)])
        #expect(m.shownIds.isEmpty)
        #expect(m.handle(.interactionChanged(path: Self.path("1"), properties: .vardict([("RemoteName", .string("Again"))]))).isEmpty)
        #expect(m.handle(.doNotDisturbChanged(true)).isEmpty)
        #expect(m.handle(.doNotDisturbChanged(false)).isEmpty)
        #expect(m.handle(.actionInvoked(id: 11, key: "answer")).isEmpty)
    }

    @Test func aFloodOfCallsShowsAFewOldestFirst() {
        var m = Self.ready(maxShown: 3)
        var shown: [String] = []
        for i in 0..<100 {
            for (p, g, _) in Self.notifies(m.handle(.interactionAdded(path: Self.path("\(i)"), properties: Self.props()))) {
                shown.append(p)
                _ = m.handle(.notifyReplied(path: p, generation: g, id: UInt32(1000 + i)))
            }
        }
        #expect(shown == [Self.path("0"), Self.path("1"), Self.path("2")])
        // One ends: the next oldest takes its place.
        let next = m.handle(.interactionRemoved(path: Self.path("1")))
        #expect(next.first == .close(id: 1001) && Self.notifies(next).map(\.0) == [Self.path("3")])
    }

    @Test func theServerGoingAwayForgetsItsIdsAndANewOneShowsAgain() throws {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        let (_, staleGeneration, _) = try #require(Self.notifies(m.handle(.interactionAdded(path: Self.path("2"), properties: Self.props()))).first)
        #expect(m.handle(.serverVanished).isEmpty, "nothing to close on a server that is gone")
        #expect(m.handle(.actionInvoked(id: 11, key: "answer")).isEmpty)
        #expect(m.handle(.interactionAdded(path: Self.path("3"), properties: Self.props())).isEmpty, "no server")
        let again = m.handle(.serverAppeared(Self.dunst))
        #expect(Self.notifies(again).map(\.0) == [Self.path("1"), Self.path("2"), Self.path("3")])
        // The old server's late answer settles nothing.
        #expect(m.handle(.notifyReplied(path: Self.path("2"), generation: staleGeneration, id: 12)).isEmpty)
        #expect(m.notificationId(for: Self.path("2")) == nil)
    }

    @Test func stoppingClosesWhatIsShown() {
        var m = Self.ready()
        Self.show(&m, "1", notificationId: 11)
        Self.show(&m, "2", notificationId: 12)
        #expect(m.handle(.stopping) == [.close(id: 11), .close(id: 12)])
    }
}
