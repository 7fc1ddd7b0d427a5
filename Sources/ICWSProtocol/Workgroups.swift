/// Part three (P3.E) messages: the user's workgroup activations and the
/// workgroup statistics.

/// `urn:inin.com:activations:userActivationMessage`.
public struct UserActivationMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var subscriptionId: String
    public var userId: String
    /// Workgroup id → activated, in message order.
    public var activationsChanged: [WorkgroupActivation]

    public init(isDelta: Bool, subscriptionId: String = "", userId: String = "", activationsChanged: [WorkgroupActivation] = []) {
        self.isDelta = isDelta
        self.subscriptionId = subscriptionId
        self.userId = userId
        self.activationsChanged = activationsChanged
    }
}

public struct WorkgroupActivation: Sendable, Equatable {
    public var workgroupId: String
    public var activated: Bool

    public init(_ workgroupId: String, _ activated: Bool) {
        self.workgroupId = workgroupId
        self.activated = activated
    }
}

/// One parameter of a statistic key (`parameterValueItems`).
public struct StatisticParameter: Sendable, Hashable {
    public var typeId: String
    public var value: String

    public init(_ typeId: String, _ value: String) {
        self.typeId = typeId
        self.value = value
    }
}

/// A statistic key: the identifier and its parameters in catalog order.
public struct StatisticKey: Sendable, Hashable {
    public var identifier: String
    public var parameters: [StatisticParameter]

    public init(_ identifier: String, _ parameters: [StatisticParameter]) {
        self.identifier = identifier
        self.parameters = parameters
    }

    /// `{statisticIdentifier, parameterValueItems: [{parameterTypeId, value}]}`.
    public var json: JSONValue {
        .object([
            ("statisticIdentifier", .string(identifier)),
            ("parameterValueItems", .array(parameters.map { .object([("parameterTypeId", .string($0.typeId)), ("value", .string($0.value))]) })),
        ])
    }

    /// The value of the parameter of this type, if the key has one.
    public func parameter(_ typeId: String) -> String? { parameters.first { $0.typeId == typeId }?.value }
}

/// A statistic's value, by its `statisticValueType` (P3 E.6).
public enum StatisticValue: Sendable, Equatable {
    case int(Int64)
    case double(Double)
    case string(String)
    case bool(Bool)
    /// A date-time as sent (types 4 TimeStamp and 5 TimeDuration: for 5, when counting started).
    case timestamp(String, counting: Bool)
    /// Types 6 Duration and 7 FutureDuration: a number.
    case duration(Double)
    case percent(Double)
    /// Type 12: 1 malformed key, 2 unknown key, 3 provider too busy, 99 other.
    case error(Int64)
    /// A type this bridge does not read, or a value not of its type: kept as a reason.
    case unreadable(String)
}

public struct StatisticValueChange: Sendable, Equatable {
    public var key: StatisticKey
    /// nil: the statistic has no value now.
    public var value: StatisticValue?

    public init(key: StatisticKey, value: StatisticValue?) {
        self.key = key
        self.value = value
    }
}

/// `urn:inin.com:statistics:statisticValueMessage`. Every message upserts,
/// whatever its `isDelta` says (P3 E.6).
public struct StatisticValueMessage: Sendable, Equatable {
    public var isDelta: Bool
    public var changes: [StatisticValueChange]

    public init(isDelta: Bool, changes: [StatisticValueChange] = []) {
        self.isDelta = isDelta
        self.changes = changes
    }
}

extension ICWSMessage {
    static func decodeUserActivation(_ json: JSONValue, isDelta: Bool) throws(MessageDecodeError) -> UserActivationMessage {
        var r = FieldReader(json, prefix: "")
        var m = UserActivationMessage(
            isDelta: isDelta, subscriptionId: try r.optionalString("subscriptionId") ?? "", userId: try r.optionalString("userId") ?? "")
        if let changed = json["activationsChanged"], !changed.isNull {
            guard case .object(let members) = changed else { throw MessageDecodeError(field: "activationsChanged", reason: "expected an object") }
            for (id, v) in members {
                guard let on = v.boolValue else { throw MessageDecodeError(field: "activationsChanged.\(id)", reason: "expected a boolean") }
                m.activationsChanged.append(WorkgroupActivation(id, on))
            }
        }
        return m
    }

    static func decodeStatisticValues(_ json: JSONValue, isDelta: Bool) throws(MessageDecodeError) -> StatisticValueMessage {
        var m = StatisticValueMessage(isDelta: isDelta)
        guard let list = json["statisticValueChanges"], !list.isNull else { return m }
        guard case .array(let items) = list else { throw MessageDecodeError(field: "statisticValueChanges", reason: "expected an array") }
        m.changes.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let f = "statisticValueChanges[\(i)]"
            guard let key = item["statisticKey"], case .object = key else { throw MessageDecodeError(field: f + ".statisticKey", reason: "missing") }
            var kr = FieldReader(key, prefix: f + ".statisticKey")
            let identifier = try kr.requiredString("statisticIdentifier")
            var parameters: [StatisticParameter] = []
            if let p = key["parameterValueItems"], !p.isNull {
                guard case .array(let ps) = p else { throw MessageDecodeError(field: f + ".statisticKey.parameterValueItems", reason: "expected an array") }
                for (j, item) in ps.enumerated() {
                    var pr = FieldReader(item, prefix: f + ".statisticKey.parameterValueItems[\(j)]")
                    parameters.append(StatisticParameter(try pr.requiredString("parameterTypeId"), try pr.optionalString("value") ?? ""))
                }
            }
            m.changes.append(StatisticValueChange(key: StatisticKey(identifier, parameters), value: statisticValue(item["statisticValue"])))
        }
        return m
    }

    /// A value never fails the message: one of the wrong type is `.unreadable`.
    static func statisticValue(_ v: JSONValue?) -> StatisticValue? {
        guard let v, !v.isNull else { return nil }
        guard case .object = v else { return .unreadable("not an object") }
        let typeName = v["__type"]?.stringValue ?? ""
        let names = [
            "statisticIntValue", "statisticDoubleValue", "statisticStringValue", "statisticBoolValue", "statisticTimeStampValue",
            "statisticTimeDurationValue", "statisticDurationValue", "statisticFutureDurationValue", "statisticFiniteDurationValue",
            "statisticPercentValue", "statisticStatusMessageKeyValue", "statisticWeightedPercentValue", "statisticErrorValue",
        ]
        let type = v["statisticValueType"]?.intValue ?? names.firstIndex { typeName.hasSuffix(":" + $0) || typeName == $0 }.map(Int64.init)
        let value = v["value"]
        func number() -> Double? {
            switch value {
            case .int(let i)?: return Double(i)
            case .double(let d)? where d.isFinite: return d
            default: return nil
            }
        }
        switch type {
        case 0?: if case .int(let i)? = value { return .int(i) }
        case 1?: if let d = number() { return .double(d) }
        case 2?, 10?: if let s = value?.stringValue { return .string(s) }
        case 3?: if let b = value?.boolValue { return .bool(b) }
        case 4?, 5?: if let s = value?.stringValue { return .timestamp(s, counting: type == 5) }
        case 6?, 7?: if let d = number() { return .duration(d) }
        case 9?, 11?: if let d = number() { return .percent(d) }
        case 12?: if case .int(let i)? = value { return .error(i) }
        default: return .unreadable("value type \(type.map(String.init) ?? typeName) is not read")
        }
        return .unreadable("the value is not of its type \(type.map(String.init) ?? "")")
    }
}

/// The workgroup figures contract v1.2 publishes (`Workgroup.Statistics`),
/// each with its statistic and the parameters it takes, in catalog order (P3 E.5).
public enum WorkgroupStatistic: String, Sendable, CaseIterable {
    case interactionsWaiting = "InteractionsWaiting"
    case longestWaitSince = "LongestWaitSince"
    case agentsAvailable = "AgentsAvailable"
    case agentsLoggedIn = "AgentsLoggedIn"
    case percentAvailable = "PercentAvailable"
    case answeredThisShift = "AnsweredThisShift"
    case abandonedThisShift = "AbandonedThisShift"

    public static let workgroupParameter = "ININ.People.WorkgroupStats:Workgroup"
    public static let intervalParameter = "ININ.Queue:Interval"

    public var identifier: String {
        switch self {
        case .interactionsWaiting: return "inin.workgroup:InteractionsWaiting"
        case .longestWaitSince: return "inin.workgroup:LongestWaitTime"
        case .agentsAvailable: return "inin.workgroup:NumberAvailableForACDInteractions"
        case .agentsLoggedIn: return "inin.workgroup:AgentsLoggedIn"
        case .percentAvailable: return "inin.workgroup:PercentAvailable"
        case .answeredThisShift: return "inin.workgroup:InteractionsAnswered"
        case .abandonedThisShift: return "inin.workgroup:InteractionsAbandoned"
        }
    }

    /// Whether the statistic counts over an interval (here the current shift).
    public var shift: Bool { self == .answeredThisShift || self == .abandonedThisShift }

    public func key(workgroup: String) -> StatisticKey {
        var parameters = [StatisticParameter(Self.workgroupParameter, workgroup)]
        if shift { parameters.append(StatisticParameter(Self.intervalParameter, "CurrentShift")) }
        return StatisticKey(identifier, parameters)
    }

    /// Every key of one workgroup.
    public static func keys(workgroup: String) -> [StatisticKey] { allCases.map { $0.key(workgroup: workgroup) } }

    /// The figure and workgroup a key names, when it is one of these.
    public init?(key: StatisticKey) {
        guard let s = Self.allCases.first(where: { $0.identifier == key.identifier }) else { return nil }
        let interval = key.parameter(Self.intervalParameter)
        guard s.shift ? interval == "CurrentShift" : interval == nil else { return nil }
        self = s
    }
}
