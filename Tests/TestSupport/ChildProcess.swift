import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with posix_spawn and a clean signal mask.
/// (Foundation's Process lets the child inherit the test runner's blocked
/// signals, so SIGTERM would never reach it.)
public final class ChildProcess: @unchecked Sendable {
    // Unchecked: pid and the pipe are fixed at start; status is behind a lock.
    public let pid: pid_t
    /// The read end of the child's stdout, when captured.
    public let stdout: FileHandle?
    private let lock = NSLock()
    private var exitStatus: Int32?

    public init(_ arguments: [String], environment: [String: String]? = nil, captureStdout: Bool = false, stderrPath: String? = nil) throws {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pipeFDs: [Int32] = [-1, -1]
        if captureStdout {
            guard pipe(&pipeFDs) == 0 else { throw TimeoutError(description: "pipe failed") }
            posix_spawn_file_actions_adddup2(&fileActions, pipeFDs[1], 1)
            posix_spawn_file_actions_addclose(&fileActions, pipeFDs[0])
            posix_spawn_file_actions_addclose(&fileActions, pipeFDs[1])
        }
        if let stderrPath {
            posix_spawn_file_actions_addopen(&fileActions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0)=\($1)" }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, arguments[0], &fileActions, &attr, argv, envp)
        if captureStdout { close(pipeFDs[1]) }
        guard rc == 0 else {
            if captureStdout { close(pipeFDs[0]) }
            throw TimeoutError(description: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        pid = child
        stdout = captureStdout ? FileHandle(fileDescriptor: pipeFDs[0], closeOnDealloc: true) : nil
    }

    /// Reads one line of stdout (blocking).
    public func readLine() -> String? {
        guard let stdout else { return nil }
        var line = Data()
        while true {
            let byte = stdout.readData(ofLength: 1)
            if byte.isEmpty { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
            if byte == Data([0x0A]) { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
    }

    /// Sends `sig`, unless the child has ended and been reaped: its pid may
    /// belong to another process by then.
    public func signal(_ sig: Int32) {
        if poll() == nil { _ = kill(pid, sig) }
    }

    /// The exit status once the child ended (non-blocking); 128+N for signal N.
    public func poll() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return nil }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        exitStatus = code
        return code
    }

    /// Waits for the end of the child; nil if it did not end in time.
    public func wait(timeout: Duration = .seconds(10)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let s = poll() { return s }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return poll()
    }

    /// SIGTERM, then SIGKILL if it does not end within `grace`.
    public func stop(grace: Duration = .seconds(5)) async {
        if poll() != nil { return }
        signal(SIGTERM)
        if await wait(timeout: grace) == nil {
            signal(SIGKILL)
            _ = await wait(timeout: .seconds(5))
        }
    }

    /// Synchronous kill for deinit paths.
    public func killNow() {
        if poll() == nil {
            signal(SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            lock.lock()
            exitStatus = 137
            lock.unlock()
        }
    }
}
