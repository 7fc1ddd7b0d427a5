import ArgumentParser
import BridgeContract
import ICWSProtocol
import DBusKit
import Foundation
import Logging

// MARK: Shell completion of live values

/// Values the shell completes by asking the running daemon: the ids of the
/// agent's interactions, the statuses the agent may select. Nothing (no error)
/// when the daemon or the bus is not there; the shell just offers nothing.
enum LiveValues {
    static let interactionIds = CompletionKind.custom { words, _, prefix in
        await ask(words) { client in
            try await client.interactionObjects().compactMap { $0.properties["Id"]?.stringValue }
        }.filter { $0.hasPrefix(prefix) }
    }

    static let workgroupIds = CompletionKind.custom { words, _, prefix in
        await ask(words) { client in
            try await client.workgroupObjects().compactMap { $0.properties["Id"]?.stringValue }
        }.filter { $0.hasPrefix(prefix) }
    }

    /// The codes of the workgroup of the interaction named before the code (`wrapup ID <TAB>`).
    static let wrapUpCodes = CompletionKind.custom { words, index, prefix in
        await ask(words) { client in
            let args = words.prefix(Int(index)).filter { !$0.hasPrefix("-") }
            guard let id = args.last, let path = BridgeNames.interactionPath(id) else { return [] }
            let workgroup = try await client.interaction(path).workgroup(timeout: client.timeout)
            let group = try await client.workgroupObjects().first { $0.properties["Id"]?.stringValue?.lowercased() == workgroup.lowercased() }
            return (group?.properties["WrapUpCodes"]?.arrayElements ?? []).compactMap { c in
                guard case .structure(let f) = c, let code = f.first?.stringValue else { return nil }
                return code
            }
        }.filter { $0.hasPrefix(prefix) }
    }

    static let statusIds = CompletionKind.custom { words, _, prefix in
        await ask(words) { client in
            let agent = try await client.properties(BridgeNames.status)
            return (agent["Selectable"]?.arrayElements ?? []).compactMap { $0["statusId"]?.stringValue }
        }.filter { $0.hasPrefix(prefix) }
    }

    /// The bus named on the command line being completed (`--bus X` or `--bus=X`), else the default.
    static func bus(in words: [String]) -> String {
        for (i, w) in words.enumerated() {
            if w == "--bus", i + 1 < words.count { return words[i + 1] }
            if w.hasPrefix("--bus=") { return String(w.dropFirst(6)) }
        }
        return ProcessInfo.processInfo.environment["ICWS_BRIDGE_BUS"] ?? "system"
    }

    static func ask(_ words: [String], _ body: (BridgeClient) async throws -> [String]) async -> [String] {
        var options = BusOptions()
        options.bus = bus(in: words)
        options.timeout = 2
        guard let client = try? await BridgeClient.open(options) else { return [] }
        defer { client.connection.close() }
        return ((try? await body(client)) ?? []).filter(isPlain)
    }

    /// The shells expand completion words (bash's `compgen -W` does parameter,
    /// command and pathname expansion on each): an id the server sent is offered
    /// only when it is letters, digits, spaces inside, and `-_.,@+:/()#`.
    static func isPlain(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 256 && id.first != " " && id.last != " "
            && id.unicodeScalars.allSatisfy { c in
                c.properties.isAlphabetic || c.properties.numericType == .decimal || c == " " || "-_.,@+:/()#".unicodeScalars.contains(c)
            }
    }
}
