import Synchronization

/// The secret values this process holds now or held lately, for the log
/// filter. Each kind keeps its own most recent values, so that a server that
/// sends many station SIP passwords cannot push the account password or the
/// live session's token out of the filter.
public final class SecretRegistry: Sendable {
    public static let shared = SecretRegistry()

    public enum Kind: Int, Sendable, CaseIterable {
        /// The account password (from the configuration).
        case credential
        /// CSRF tokens and cookie values of sessions.
        case session
        /// Secrets the server hands out about stations (`sipPassword`).
        case station
    }

    /// Values shorter than this are not registered: they would blank out
    /// ordinary words in every log line and say little to a reader anyway.
    public static let minimumLength = 4
    static let capacity = 64

    private let values = Mutex<[[String]]>(Array(repeating: [], count: Kind.allCases.count))

    public init() {}

    public func register(_ value: String, kind: Kind) {
        guard value.utf8.count >= Self.minimumLength, value.utf8.count <= 64 * 1024 else { return }
        values.withLock { all in
            var v = all[kind.rawValue]
            if let i = v.firstIndex(of: value) { v.remove(at: i) }
            v.append(value)
            if v.count > Self.capacity { v.removeFirst(v.count - Self.capacity) }
            all[kind.rawValue] = v
        }
    }

    /// The values, longest first (so that a secret containing another is removed whole).
    public var all: [String] { values.withLock { $0.flatMap { $0 } }.sorted { $0.utf8.count > $1.utf8.count } }
}
