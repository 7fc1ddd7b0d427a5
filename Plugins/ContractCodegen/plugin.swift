import Foundation
import PackagePlugin

/// Generates the D-Bus contract's Swift bindings from the package's
/// `dbus/interfaces/*.xml` (the one place the contract is written) each time
/// they change: the member tables, the embedded XML, a typed handler protocol
/// per interface for the daemon, and a typed client proxy per interface for
/// `icws-bridgectl` and `icws-bridge-notify`. Like gdbus-codegen, run by the build.
@main struct ContractCodegen: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let interfaces = context.package.directoryURL.appending(path: "dbus").appending(path: "interfaces")
        let xml = try FileManager.default.contentsOfDirectory(at: interfaces, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "xml" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "Contract.generated.swift")
        return [
            .buildCommand(
                displayName: "Generating the D-Bus contract from \(xml.count) interface files",
                executable: try context.tool(named: "dbus-contract-gen").url,
                arguments: [output.path] + xml.map(\.path),
                inputFiles: xml,
                outputFiles: [output])
        ]
    }
}
