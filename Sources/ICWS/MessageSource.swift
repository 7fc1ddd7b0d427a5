/// The messages of one session, from whichever channel it uses: the
/// server-sent event stream (messaging version 2) or short polls. Either way
/// the session machine sees the same thing: typed messages, each decoded once
/// from the bytes the server sent, then the stream's end.
struct MessageSource: Sendable {
    let client: ICWSClient
    let sse: Bool
    let pollInterval: Duration
    let stallTimeout: Duration
    let maxEventBytes: Int

    /// Reads messages until the stream ends: nil when it ended cleanly, else
    /// its error. `opened` is called once, when the first bytes (or the first
    /// poll's answer) arrive; `deliver` with the messages of each read (or
    /// poll), in order: in a burst, one hand-over carries many messages.
    func run(
        _ s: ICWSSession, opened: @escaping @Sendable () async -> Void,
        deliver: @escaping @Sendable ([Result<ICWSMessage, MessageDecodeError>]) async -> Void
    ) async -> ICWSError? {
        sse ? await stream(s, opened: opened, deliver: deliver) : await poll(s, opened: opened, deliver: deliver)
    }

    private func stream(
        _ s: ICWSSession, opened: @escaping @Sendable () async -> Void,
        deliver: @escaping @Sendable ([Result<ICWSMessage, MessageDecodeError>]) async -> Void
    ) async -> ICWSError? {
        let first = LockedValue(true)
        do throws(ICWSError) {
            try await client.streamEvents(s, stallTimeout: stallTimeout, maxEventBytes: maxEventBytes) { outputs in
                if first.update({ f in defer { f = false }; return f }) {
                    // The stream's connection exists now: keep-alive on it.
                    TCPKeepAlive.enableOnOpenSockets()
                    await opened()
                }
                var messages: [Result<ICWSMessage, MessageDecodeError>] = []
                messages.reserveCapacity(outputs.count)
                for case .event(let event) in outputs {
                    do throws(MessageDecodeError) {
                        messages.append(.success(try ICWSMessage.decode(text: event.data)))
                    } catch {
                        messages.append(.failure(error))
                    }
                }
                if !messages.isEmpty { await deliver(messages) }
            }
            return nil
        } catch {
            return error
        }
    }

    private func poll(
        _ s: ICWSSession, opened: @escaping @Sendable () async -> Void,
        deliver: @escaping @Sendable ([Result<ICWSMessage, MessageDecodeError>]) async -> Void
    ) async -> ICWSError? {
        var first = true
        while !Task.isCancelled {
            do throws(ICWSError) {
                let results = try await client.poll(s)
                if first {
                    first = false
                    await opened()
                }
                if !results.isEmpty { await deliver(results) }
            } catch {
                return error
            }
            do { try await loopSleep(for: pollInterval) } catch { return nil }
        }
        return nil
    }
}
