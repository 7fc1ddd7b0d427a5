import DBusKit

/// What the notification server can do, from `GetCapabilities`.
public struct ServerCapabilities: Sendable, Equatable {
    public var actions: Bool
    public var body: Bool
    public var bodyMarkup: Bool

    public init(actions: Bool = true, body: Bool = true, bodyMarkup: Bool = false) {
        self.actions = actions
        self.body = body
        self.bodyMarkup = bodyMarkup
    }

    /// From the capability names the server lists.
    public init(_ names: [String]) {
        actions = names.contains("actions")
        body = names.contains("body")
        bodyMarkup = names.contains("body-markup")
    }
}

/// The arguments of one `org.freedesktop.Notifications.Notify` call.
public struct NotificationRequest: Sendable, Equatable {
    public var appName: String
    public var replacesId: UInt32
    public var icon: String
    public var summary: String
    public var body: String
    /// Pairs of (key, label), flattened on the bus.
    public var actions: [(key: String, label: String)]
    public var urgency: UInt8
    public var category: String?
    public var resident: Bool
    /// Milliseconds; 0 never expires.
    public var expireTimeout: Int32

    public static func == (a: NotificationRequest, b: NotificationRequest) -> Bool {
        a.appName == b.appName && a.replacesId == b.replacesId && a.icon == b.icon && a.summary == b.summary && a.body == b.body
            && a.actions.map(\.key) == b.actions.map(\.key) && a.actions.map(\.label) == b.actions.map(\.label) && a.urgency == b.urgency
            && a.category == b.category && a.resident == b.resident && a.expireTimeout == b.expireTimeout
    }

    /// The action keys the notifier answers to.
    public enum Key {
        /// Clicking the notification itself (and `dunstctl action`): answers.
        public static let `default` = "default"
        public static let answer = "answer"
        public static let decline = "decline"
    }

    /// The `susssasa{sv}i` arguments of `Notify`.
    public var arguments: [DBusValue] {
        var hints: [(String, DBusValue)] = [("urgency", .byte(urgency))]
        if let category { hints.append(("category", .string(category))) }
        if resident { hints.append(("resident", .bool(true))) }
        return [
            .string(appName), .uint32(replacesId), .string(icon), .string(summary), .string(body),
            .strings(actions.flatMap { [$0.key, $0.label] }), .vardict(hints), .int32(expireTimeout),
        ]
    }
}

/// How a ringing interaction becomes a notification (the desktop's conventions).
public struct NotificationStyle: Sendable, Equatable {
    /// `app_name`: the bridge's name, as the user knows it.
    public var appName = "icws-bridge"
    /// An icon name of the freedesktop icon naming specification (not a path).
    public var icon = "call-start"
    public var answerLabel = "Answer"
    public var declineLabel = "Decline"

    public init() {}

    /// Urgency 2 (critical): a ringing call is time-critical, and critical
    /// notifications are the ones servers do not expire by themselves.
    public static let urgency: UInt8 = 2

    /// The spec's category for the interaction's type (`x-gnome.call` is the
    /// one GNOME and others use for an incoming call; the spec has no call
    /// category). Unknown types get none.
    public static func category(forType type: String) -> String? {
        switch type.lowercased() {
        case "", "call", "callback": return "x-gnome.call"
        case "chat", "sms", "smsmessage", "instantquestion", "directmessage", "socialconversation", "socialdirectmessage": return "im.received"
        case "email": return "email.arrived"
        default: return nil
        }
    }

    /// The notification for a ringing interaction on a server with these capabilities.
    ///
    /// Summary "Call from NAME" (the number when there is no name); body
    /// "NUMBER · QUEUE" with the parts that are known. The summary is plain
    /// text by the specification (servers escape it themselves); the body is
    /// escaped only when the server reads it as markup.
    public func request(for i: InteractionInfo, capabilities: ServerCapabilities, replacesId: UInt32 = 0) -> NotificationRequest {
        let name = NotificationText.clean(i.remoteName)
        let number = NotificationText.clean(i.remoteAddress)
        let queue = NotificationText.clean(i.queue)
        let type = NotificationText.clean(i.type, limit: 32)
        let what = type.isEmpty || type.lowercased() == "call" ? "Call" : type
        let caller = name.isEmpty ? (number.isEmpty ? "an unknown caller" : number) : name
        var summary = "\(what) from \(caller)"
        var parts: [String] = []
        if !name.isEmpty, !number.isEmpty { parts.append(number) }
        if !queue.isEmpty { parts.append(queue) }
        var body = parts.joined(separator: " · ")
        if !capabilities.body {
            if !body.isEmpty { summary += " (\(body))" }
            body = ""
        } else if capabilities.bodyMarkup {
            body = NotificationText.escapeMarkup(body)
        }
        let actions: [(key: String, label: String)] =
            capabilities.actions
            ? [(NotificationRequest.Key.default, answerLabel), (NotificationRequest.Key.answer, answerLabel), (NotificationRequest.Key.decline, declineLabel)]
            : []
        return NotificationRequest(
            appName: appName, replacesId: replacesId, icon: icon, summary: summary, body: body, actions: actions, urgency: Self.urgency,
            category: Self.category(forType: type), resident: capabilities.actions, expireTimeout: 0)
    }
}
