import BridgeContract
import ICWSProtocol
import DBusKit

/// What the notifier keeps of one interaction object of the bridge (contract
/// v1.1, `io.github.icwsbridge.Bridge1.Interaction`): only the properties a
/// notification needs, each bounded when it arrives.
public struct InteractionInfo: Sendable, Equatable {
    /// `State` (u).
    public var state = InteractionState.unknown
    /// `Direction` (u).
    public var direction = CallDirection.unknown
    /// `Type` (s): `Eic_ObjectType` as sent, e.g. `Call`.
    public var type = ""
    public var remoteName = ""
    public var remoteAddress = ""
    /// The queue (workgroup) the interaction came through, when the bridge
    /// publishes it: `Eic_WorkgroupName` in `Attributes`, present when the
    /// bridge's `interactions-attributes` asks for it.
    public var queue = ""

    public init(state: InteractionState = .unknown, direction: CallDirection = .unknown, type: String = "", remoteName: String = "", remoteAddress: String = "", queue: String = "") {
        self.state = state
        self.direction = direction
        self.type = type
        self.remoteName = remoteName
        self.remoteAddress = remoteAddress
        self.queue = queue
    }

    /// The attributes a queue name is read from, in order of preference.
    public static let queueAttributes = ["Eic_WorkgroupName", "Eic_QueueName"]

    /// Ringing here: offering or alerting, and inbound, as the contract says.
    public var isAlerting: Bool { state.isRinging && direction == .inbound }

    /// Applies properties as `GetManagedObjects`, `InterfacesAdded` or
    /// `PropertiesChanged` carry them (`a{sv}`). A property of the wrong type
    /// is ignored, as is any property the notifier does not use.
    public mutating func apply(_ properties: DBusValue) {
        guard let entries = properties.dictEntries else { return }
        for (name, raw) in entries {
            let value = raw.unwrapped
            switch name {
            case Contract.Interaction.state.name: if case .uint32(let u) = value { state = InteractionState(bus: u) }
            case Contract.Interaction.direction.name: if case .uint32(let u) = value { direction = CallDirection(bus: u) }
            case Contract.Interaction.type.name: if case .string(let s) = value { type = NotificationText.bounded(s) }
            case Contract.Interaction.remoteName.name: if case .string(let s) = value { remoteName = NotificationText.bounded(s) }
            case Contract.Interaction.remoteAddress.name: if case .string(let s) = value { remoteAddress = NotificationText.bounded(s) }
            case Contract.Interaction.attributes.name:
                // The whole map each time (a snapshot replaces it): no queue in it means none.
                guard case .dict(_, _, let attributes) = value else { continue }
                queue = ""
                for wanted in Self.queueAttributes {
                    let lower = wanted.lowercased()
                    if let hit = attributes.first(where: { $0.key.stringValue?.lowercased() == lower }), case .string(let s) = hit.value,
                        !NotificationText.clean(s).isEmpty
                    {
                        queue = NotificationText.bounded(s)
                        break
                    }
                }
            default: continue
            }
        }
    }
}
