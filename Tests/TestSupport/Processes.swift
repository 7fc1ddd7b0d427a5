import Foundation

/// The repository root (for shipped files such as dbus/ and systemd/).
public let repositoryRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
}()

public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a command to completion (optionally as another user through setpriv).
/// The waiting happens on a dispatch thread: a test that blocked the few
/// threads of the concurrency pool would starve the in-process servers it calls.
public func runCommand(
    _ arguments: [String], environment: [String: String] = [:], asUser user: String? = nil, input: String? = nil
) async throws -> CommandResult {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try runCommandBlocking(arguments, environment: environment, asUser: user, input: input) })
        }
    }
}

func runCommandBlocking(
    _ arguments: [String], environment: [String: String], asUser user: String?, input: String?
) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    var args = arguments
    if let user { args = ["setpriv", "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--"] + args }
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    p.environment = env
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    if let input {
        let inPipe = Pipe()
        p.standardInput = inPipe
        try p.run()
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try inPipe.fileHandleForWriting.close()
    } else {
        p.standardInput = FileHandle.nullDevice
        try p.run()
    }
    // Read both pipes fully before waiting so a large output cannot block the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

public var isRoot: Bool { getuid() == 0 }

/// Makes sure the system users the policy names exist (tests run as root):
/// `icws-bridge`, group `icws-agents`, `icws-test-agent` (a member) and
/// `icws-test-outsider` (not a member).
public func ensurePolicyUsers() async throws {
    if (try? await runCommand(["getent", "group", "icws-agents"]))?.status != 0 {
        _ = try await runCommand(["groupadd", "--system", "icws-agents"])
    }
    if (try? await runCommand(["id", "icws-bridge"]))?.status != 0 {
        _ = try await runCommand(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", "icws-bridge"])
    }
    if (try? await runCommand(["id", "icws-test-agent"]))?.status != 0 {
        _ = try await runCommand(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", "-G", "icws-agents", "icws-test-agent"])
    }
    if (try? await runCommand(["id", "icws-test-outsider"]))?.status != 0 {
        _ = try await runCommand(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", "icws-test-outsider"])
    }
}

/// A dbus-daemon of the test's own, on a socket in a fresh directory, with a
/// config that includes the shipped system.d policy (so the policy is tested).
public final class PrivateBus: @unchecked Sendable {
    // Unchecked: the fields are set once in init and only read afterwards.
    public let address: String
    public let directory: URL
    let process: ChildProcess

    /// `systemLimits`: the limits of dbus-daemon's system bus (32 MiB messages,
    /// its defaults) instead of the roomy ones most tests use.
    public init(includeShippedPolicy: Bool = true, allowRootToOwnBridgeName: Bool = true, systemLimits: Bool = false) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("icws-bus-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        _ = chmod(dir.path, 0o755)
        directory = dir
        let socket = dir.appendingPathComponent("bus").path
        let policy = repositoryRoot.appendingPathComponent("dbus/system.d/io.github.icwsbridge.Bridge1.conf").path
        let limits =
            systemLimits
            ? ""
            : """
            <limit name="max_incoming_bytes">1000000000</limit>
            <limit name="max_outgoing_bytes">1000000000</limit>
            <limit name="max_message_size">134217728</limit>
            <limit name="max_replies_per_connection">100000</limit>
            """
        let config = """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>system</type>
              <listen>unix:path=\(socket)</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_type="method_call"/>
                <allow send_type="signal"/>
                <allow send_requested_reply="true" send_type="method_return"/>
                <allow send_requested_reply="true" send_type="error"/>
                <allow receive_type="method_call"/>
                <allow receive_type="method_return"/>
                <allow receive_type="error"/>
                <allow receive_type="signal"/>
                <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
              </policy>
              \(allowRootToOwnBridgeName ? "<policy user=\"root\"><allow own=\"io.github.icwsbridge.Bridge1\"/></policy>" : "")
              \(includeShippedPolicy ? "<include>\(policy)</include>" : "")
              \(limits)
            </busconfig>
            """
        let configURL = dir.appendingPathComponent("bus.conf")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        let p = try ChildProcess(
            ["dbus-daemon", "--nofork", "--nopidfile", "--nosyslog", "--config-file=\(configURL.path)", "--print-address=1"],
            captureStdout: true)
        process = p
        address = p.readLine() ?? ""
        if address.isEmpty {
            p.killNow()
            throw TimeoutError(description: "dbus-daemon did not start (see its stderr)")
        }
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) dbus-daemon: a bus that stops
    /// reading. Returns once the kernel shows it stopped (or running again).
    public func pause(_ paused: Bool) async throws {
        process.signal(paused ? SIGSTOP : SIGCONT)
        try await eventually(paused ? "dbus-daemon stopped" : "dbus-daemon running") {
            let stat = (try? String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8)) ?? ""
            let state = stat.lastIndex(of: ")").map { stat[stat.index($0, offsetBy: 2)] }
            return paused ? state == "T" : state != "T"
        }
    }

    public func stop() {
        process.signal(SIGCONT)
        process.killNow()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    /// Runs busctl against this bus.
    public func busctl(_ args: [String], asUser user: String? = nil) async throws -> CommandResult {
        try await runCommand(["busctl", "--address=\(address)"] + args, asUser: user)
    }
}

public struct CommandFailed: Error, CustomStringConvertible {
    public var description: String
}

/// A throwaway CA and a server certificate it signed for `names` (DNS names
/// and IP addresses), made with openssl in `directory`.
public struct TestCertificates: Sendable {
    public let caCertificate: String
    public let serverCertificate: String
    public let serverKey: String

    public static func make(in directory: URL, names: [String] = ["localhost", "127.0.0.1"]) async throws -> TestCertificates {
        let d = directory.path
        let ext = directory.appendingPathComponent("server.ext").path
        let san = names.map { $0.first?.isNumber == true ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ",")
        try "subjectAltName=\(san)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let steps: [[String]] = [
            ["openssl", "req", "-x509"] + ec + ["-keyout", "\(d)/ca.key", "-out", "\(d)/ca.pem", "-days", "2",
                "-subj", "/CN=icws-bridge test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req"] + ec + ["-keyout", "\(d)/server.key", "-out", "\(d)/server.csr", "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key",
                "-CAcreateserial", "-out", "\(d)/server.pem", "-days", "2", "-extfile", ext],
        ]
        for step in steps {
            let r = try await runCommand(step)
            guard r.status == 0 else { throw CommandFailed(description: "\(step.joined(separator: " ")) failed: \(r.stderr)") }
        }
        return TestCertificates(caCertificate: "\(d)/ca.pem", serverCertificate: "\(d)/server.pem", serverKey: "\(d)/server.key")
    }
}
