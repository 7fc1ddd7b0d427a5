/// The one rule for `isDelta: true`: a delta changes only the fields it
/// names. A field it carries takes the delta's value (a JSON `null` clears
/// it); every field it does not carry keeps its value. Every record the
/// daemon keeps across messages (station info, alerting details, user
/// entries, the user's status, the status catalogue, queue interactions)
/// is merged by `DeltaRecord.apply(delta:)` and nothing else.

/// The keys of a JSON object that a message carried, a null included: what
/// a delta names. It says where a value came from, not what it is, so two
/// records with the same values are equal whatever their messages named.
public struct NamedKeys: Sendable, Equatable, ExpressibleByArrayLiteral {
    public var keys: Set<String>

    public init(_ keys: Set<String> = []) { self.keys = keys }
    public init(arrayLiteral elements: String...) { keys = Set(elements) }
    /// The keys of `json` when it is an object.
    public init(of json: JSONValue?) {
        if case .object(let members)? = json { keys = Set(members.map(\.0)) } else { keys = [] }
    }

    public func contains(_ key: String) -> Bool { keys.contains(key) }
    public static func == (_: Self, _: Self) -> Bool { true }
}

/// One field of a record that a delta may name: its JSON key, how to take
/// it from a delta, and whether two records hold the same value in it.
public struct DeltaField<Record>: Sendable {
    public let key: String
    let copy: @Sendable (inout Record, Record) -> Void
    public let same: @Sendable (Record, Record) -> Bool

    public init<Value: Equatable>(_ key: String, _ path: WritableKeyPath<Record, Value> & Sendable) {
        self.key = key
        copy = { $0[keyPath: path] = $1[keyPath: path] }
        same = { $0[keyPath: path] == $1[keyPath: path] }
    }

    /// A field whose value is not one stored property (a flag in a list, a map merged by key).
    public init(_ key: String, copy: @escaping @Sendable (inout Record, Record) -> Void, same: @escaping @Sendable (Record, Record) -> Bool) {
        self.key = key
        self.copy = copy
        self.same = same
    }
}

/// A record that deltas update field by field.
public protocol DeltaRecord: Sendable {
    /// What the message this record came from carried.
    var named: NamedKeys { get set }
    /// Every field a delta may name.
    static var deltaFields: [DeltaField<Self>] { get }
}

extension DeltaRecord {
    /// The one delta rule: the fields `delta` names take its values (a null
    /// clears), every other field keeps its own.
    public mutating func apply(delta: Self) {
        for field in Self.deltaFields where delta.named.contains(field.key) { field.copy(&self, delta) }
        named.keys.formUnion(delta.named.keys)
    }
}

/// Attributes merged by a delta: a value sets the attribute (names are
/// case-insensitive in ICWS, the first spelling stays), a name in `cleared`
/// (sent as null) removes it, and every other attribute stays.
public func mergeAttributes(_ attributes: inout [(String, String)], _ changes: [(String, String)], cleared: [String]) {
    for (name, value) in changes {
        let lower = name.lowercased()
        if let i = attributes.firstIndex(where: { $0.0.lowercased() == lower }) {
            attributes[i].1 = value
        } else {
            attributes.append((name, value))
        }
    }
    for name in cleared {
        let lower = name.lowercased()
        attributes.removeAll { $0.0.lowercased() == lower }
    }
}

/// Whether two attribute lists hold the same values, by name (case-insensitive), in any order.
public func sameAttributes(_ a: [(String, String)], _ b: [(String, String)]) -> Bool {
    func map(_ list: [(String, String)]) -> [String: String] {
        Dictionary(list.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { _, last in last })
    }
    return map(a) == map(b)
}

extension UserStatus: DeltaRecord {
    public static let deltaFields: [DeltaField<UserStatus>] = [
        .init("statusId", \.statusId), .init("notes", \.notes), .init("forwardNumber", \.forwardNumber),
        .init("statusChanged", \.statusChanged), .init("loggedIn", \.loggedIn), .init("onPhone", \.onPhone),
    ]
}

extension StatusMessage: DeltaRecord {
    public static let deltaFields: [DeltaField<StatusMessage>] =
        [.init("messageText", \.messageText), .init("groupTag", \.groupTag)]
        + flagNames.map { name in
            DeltaField(name, copy: { $0.setFlag(name, $1.flag(name)) }, same: { $0.flag(name) == $1.flag(name) })
        }
}

extension StationInformation: DeltaRecord {
    public static let deltaFields: [DeltaField<StationInformation>] = [
        .init("id", \.id), .init("extension", \.extension), .init("canBeDialed", \.canBeDialed), .init("ringAlways", \.ringAlways),
        .init("sipAddress", \.sipAddress), .init("sipUser", \.sipUser), .init("sipPassword", \.sipPassword),
        .init("remoteNumber", \.remoteNumber), .init("managedIPPhone", \.managedIPPhone),
        .init("emergencyResponderLocationID", \.emergencyResponderLocationID), .init("stationSetting", \.stationSetting),
        .init("allowedMediaTypes", \.allowedMediaTypes),
    ]
}

extension InteractionAlertDetail: DeltaRecord {
    public static let deltaFields: [DeltaField<InteractionAlertDetail>] = [
        .init("interactionType", \.interactionType), .init("name", \.name), .init("address", \.address),
        .init("alertType", \.alertType), .init("alertAction", \.alertAction), .init("autoAnswer", \.autoAnswer),
        DeltaField(
            "monitoredQueue",
            copy: {
                $0.queueType = $1.queueType
                $0.queueName = $1.queueName
            }, same: { $0.queueType == $1.queueType && $0.queueName == $1.queueName }),
        .attributes,
    ]
}

extension QueueInteraction: DeltaRecord {
    public static let deltaFields: [DeltaField<QueueInteraction>] = [
        .init("conferenceParentId", \.conferenceParentId),
        .attributes,
    ]
}

extension UserEntry: DeltaRecord {
    public static let deltaFields: [DeltaField<UserEntry>] = [
        .init("displayName", \.displayName),
        // Every entry names its properties: each is set, or removed by a null.
        DeltaField(
            "properties",
            copy: { entry, delta in
                for (k, v) in delta.properties {
                    entry.properties.removeAll { $0.0 == k }
                    if !v.isNull { entry.properties.append((k, v)) }
                }
            },
            same: { a, b in
                a.properties.count == b.properties.count
                    && a.properties.allSatisfy { p in b.properties.contains { $0.0 == p.0 && $0.1 == p.1 } }
            }),
    ]
}

/// A record with attributes that deltas merge by name (`mergeAttributes`).
public protocol AttributeRecord {
    var attributes: [(String, String)] { get set }
    var clearedAttributes: [String] { get }
}

extension InteractionAlertDetail: AttributeRecord {}
extension QueueInteraction: AttributeRecord {}

extension DeltaField where Record: AttributeRecord {
    /// The `attributes` field: merged by name, a null removing one.
    static var attributes: DeltaField {
        DeltaField(
            "attributes", copy: { mergeAttributes(&$0.attributes, $1.attributes, cleared: $1.clearedAttributes) },
            same: { sameAttributes($0.attributes, $1.attributes) })
    }
}
