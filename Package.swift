// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "icws-bridge",
    products: [
        .executable(name: "icws-bridged", targets: ["icws-bridged"]),
        .executable(name: "icws-bridgectl", targets: ["icws-bridgectl"]),
        .executable(name: "icws-sim", targets: ["icws-sim"]),
        .executable(name: "icws-bridge-notify", targets: ["icws-bridge-notify"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CDBus", pkgConfig: "dbus-1",
            providers: [.apt(["libdbus-1-dev"])]),
        .systemLibrary(
            name: "CSystemd", pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CNetlink"),
        .target(name: "CConcurrencyHooks"),
        // A thread of its own, and an outbox for calls that may block (sd_notify, the journal).
        .target(name: "CThread"),
        .target(name: "OwnThread", dependencies: ["CThread"]),
        // What a resting process needs: tasks on NIO's loops (no libdispatch pool
        // and its 1 s monitor), signals on a sigwait thread. The daemon and the notifier.
        .target(
            name: "ProcessSupport",
            dependencies: [
                "CConcurrencyHooks", "DBusKit", "OwnThread",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .target(name: "ICWSProtocol"),
        .target(
            name: "ICWS",
            dependencies: [
                "ICWSProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "DBusKit",
            dependencies: ["CDBus", "DBusIntrospection", "OwnThread", .product(name: "Logging", package: "swift-log")]),
        // The introspection XML reader, alone: DBusKit and the contract generator share it.
        .target(name: "DBusIntrospection"),
        // Generates the contract's Swift bindings from dbus/interfaces/*.xml at build time.
        .executableTarget(name: "dbus-contract-gen", dependencies: ["DBusIntrospection"]),
        .plugin(name: "ContractCodegen", capability: .buildTool(), dependencies: ["dbus-contract-gen"]),
        .target(name: "BridgeContract", dependencies: ["ICWSProtocol", "DBusKit"], plugins: ["ContractCodegen"]),
        .target(
            name: "Bridge",
            dependencies: ["BridgeContract", "ICWS", "DBusKit", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "Systemd",
            dependencies: ["CSystemd", "OwnThread", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "ICWSSimulator",
            dependencies: [
                "ICWSProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "Daemon",
            dependencies: [
                "Bridge", "BridgeContract", "Systemd", "ICWS", "DBusKit", "CMalloc", "CNetlink", "ProcessSupport", "OwnThread",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "icws-bridged",
            dependencies: [
                "Daemon", "DBusKit", "Systemd", "ProcessSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "icws-bridgectl",
            dependencies: [
                // The bus contract only: no HTTP client, no session code.
                "DBusKit", "BridgeContract", "ICWSProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // The desktop notifier: the bus contract and DBusKit only, like icws-bridgectl.
        .target(
            name: "Notifier",
            dependencies: ["DBusKit", "BridgeContract", "ICWSProtocol", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "icws-bridge-notify",
            dependencies: [
                "Notifier", "DBusKit", "ProcessSupport", "Systemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "icws-sim",
            dependencies: [
                "ICWSSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "CBenchReceiver", dependencies: ["CDBus"], path: "Benchmarks/CBenchReceiver"),
        .executableTarget(
            name: "icws-bench",
            dependencies: [
                "TestSupport", "ICWSSimulator", "ICWS", "DBusKit", "Bridge", "CBenchReceiver",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/icws-bench"),
        .target(name: "FuzzTargets", dependencies: ["ICWSProtocol", "BridgeContract", "DBusKit"], path: "Tests/Fuzz/Targets"),
        // scripts/fuzz instruments every module (address sanitizer and libFuzzer's
        // coverage) and links libFuzzer into this one binary only: linked into the
        // contract generator (a build tool with its own main) it would not link.
        .executableTarget(
            name: "icws-fuzz", dependencies: ["FuzzTargets"], path: "Tests/Fuzz/Driver",
            linkerSettings: Context.environment["ICWS_FUZZ_BUILD"] == nil ? [] : [.unsafeFlags(["-sanitize=fuzzer,address"])]),
        .target(
            name: "TestSupport",
            dependencies: ["ICWSSimulator", "ICWS", "DBusKit", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"),
        // One test target per module; the suites that run the daemon binary on a bus are EndToEndTests.
        .testTarget(name: "ICWSProtocolTests", dependencies: ["ICWSProtocol", "FuzzTargets"]),
        // The session machine alone: no network, no clock, runs in seconds.
        .testTarget(name: "SessionMachineTests", dependencies: ["ICWS"]),
        .testTarget(name: "ICWSTests", dependencies: ["ICWS", "ICWSSimulator", "TestSupport"]),
        .testTarget(name: "DBusKitTests", dependencies: ["DBusKit", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "BridgeContractTests", dependencies: ["BridgeContract", "Bridge", "ICWS", "ICWSProtocol", "DBusKit", "TestSupport"]),
        .testTarget(name: "BridgeTests", dependencies: ["Bridge", "ICWS", "DBusKit", "ICWSSimulator", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "NotifierTests", dependencies: ["Notifier", "DBusKit", "BridgeContract"]),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["Daemon", "ICWS", "Systemd", "OwnThread", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "TestSupport", "ICWSSimulator", "DBusKit", "ICWS", "Daemon", "Bridge", "icws-bridged", "icws-bridgectl", "icws-bridge-notify",
                .product(name: "Logging", package: "swift-log"),
            ]),
    ]
)
