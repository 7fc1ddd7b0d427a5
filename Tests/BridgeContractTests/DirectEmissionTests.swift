import BridgeContract
import DBusKit
import ICWSProtocol
import Testing

/// The alerting signal is marshalled straight into its wire bytes (no value
/// tree, no libdbus message); these hold it to the value path built by
/// libdbus: the same bytes, which libdbus parses back with full validation,
/// the same size bound, the same split.
@Suite struct DirectEmissionTests {
    /// A small seeded generator (SplitMix64), so that a failure repeats.
    struct Seeded {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let pieces = ["", "a", "Call", "+1 555 0100", "é", "名前", "🙂", "\u{0}", "x\u{0}y", "<b>&amp;</b>", " ", "\n", "\u{FFFD}", "Eic_WorkgroupName",
        // Noncharacters and the last scalar: valid UTF-8 a bus takes (a string it refused would cost the connection).
        // (Swift takes no literal of a noncharacter: their UTF-8 is spelled out.)
        String(decoding: [0xEF, 0xBF, 0xBE], as: UTF8.self), String(decoding: [0xEF, 0xB7, 0x90], as: UTF8.self),
        String(decoding: [0xF4, 0x8F, 0xBF, 0xBF], as: UTF8.self)]

    static func text(_ g: inout Seeded) -> String {
        var s = ""
        for _ in 0..<g.below(4) { s += pieces[g.below(pieces.count)] }
        if g.below(20) == 0 { s += String(repeating: "long", count: 1 + g.below(4000)) }
        return s
    }

    static func detail(_ g: inout Seeded) -> InteractionAlertDetail {
        InteractionAlertDetail(
            interactionId: text(&g), interactionType: text(&g), name: text(&g), address: text(&g),
            alertType: AlertType(rawValue: UInt32(g.below(9))), alertAction: AlertAction(rawValue: UInt32(g.below(4))),
            autoAnswer: g.below(2) == 0, queueType: g.below(2) == 0 ? nil : QueueType(rawValue: UInt32(g.below(6))),
            queueName: g.below(2) == 0 ? nil : text(&g), attributes: (0..<g.below(5)).map { _ in (text(&g), text(&g)) })
    }

    static func check(_ signal: SignalEmission) throws {
        let direct = try #require(signal.direct)
        let path = BridgeNames.objectPath
        let built = try WireCheck.bytes(path: path, interface: signal.interface, member: signal.member, arguments: signal.arguments).get()
        let written = try WireCheck.bytes(
            path: path, interface: signal.interface, member: signal.member, signature: signal.spec.signature, sizeBound: signal.sizeBound,
            write: direct
        ).get()
        #expect(!built.isEmpty)
        #expect(written == built)
        #expect(signal.sizeBound == signal.arguments.reduce(0) { $0 + $1.encodedSizeBound })
    }

    @Test func writtenAlertingSignalsAreTheBuiltOnesByteForByte() throws {
        var g = Seeded(state: 20_261_202)
        for _ in 0..<2_000 {
            let m = InteractionAlertingMessage(isDelta: g.below(2) == 0, details: (0..<g.below(4)).map { _ in Self.detail(&g) })
            let signals = Emission.signals(for: .interactionAlerting(m))
            #expect(signals.count == 1)
            for s in signals { try Self.check(s) }
        }
    }

    @Test func sizeBoundOfADetailIsThatOfItsValue() {
        var g = Seeded(state: 7)
        for _ in 0..<2_000 {
            let d = Self.detail(&g)
            #expect(ContractMaps.alertDetailSizeBound(d) == ContractMaps.alertDetail(d).encodedSizeBound)
        }
    }

    @Test func aLargeMessageSplitsAsTheValuesDoAndEachPartIsTheSame() throws {
        // Details of about 3 MiB each: the 8 MiB split puts two in a signal.
        let big = String(repeating: "z", count: 3 << 20)
        let details = (0..<5).map { InteractionAlertDetail(interactionId: "i\($0)", name: big) }
        let m = InteractionAlertingMessage(isDelta: false, details: details)
        let signals = Emission.signals(for: .interactionAlerting(m))
        let runs = SignalSplitter.runs(details.map(ContractMaps.alertDetail))
        #expect(signals.count == runs.count)
        #expect(signals.count == 3)
        for (s, run) in zip(signals, runs) {
            #expect(s.arguments.first == .vardicts(run))
            try Self.check(s)
        }
        // The first keeps isDelta; the rest say true.
        #expect(signals.map { $0.arguments.last } == [.bool(false), .bool(true), .bool(true)])
    }

    @Test func anEmptyMessageIsOneEmptySignal() throws {
        let signals = Emission.signals(for: .interactionAlerting(InteractionAlertingMessage(isDelta: true, details: [])))
        #expect(signals.count == 1)
        #expect(signals.first?.arguments == [.vardicts([]), .bool(true)])
        for s in signals { try Self.check(s) }
    }

    @Test func aWriterOfTheWrongShapeSendsNothing() {
        // The declared signature is checked against what was written.
        let r = WireCheck.bytes(
            path: BridgeNames.objectPath, interface: BridgeNames.interactions, member: "InteractionAlerting", signature: "aa{sv}b",
            sizeBound: 64
        ) { w in w.bool(true) }
        #expect(throws: BusError.self) { try r.get() }
    }

    @Test func anOversizedSignalIsRefusedBeforeItIsBuilt() {
        var wrote = false
        let r = WireCheck.bytes(
            path: BridgeNames.objectPath, interface: BridgeNames.interactions, member: "InteractionAlerting", signature: "aa{sv}b",
            sizeBound: BusConnection.maxMessageBytes
        ) { _ in wrote = true }
        #expect(throws: BusError.self) { try r.get() }
        #expect(!wrote)
    }
}
