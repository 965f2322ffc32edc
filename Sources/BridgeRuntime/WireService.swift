import BridgeCore
import Logging
import ServiceLifecycle
import WireProtocol

/// The wire-protocol server with pgbridge's tables, as a service of the process.
public struct WireService: Service {
    let server: WireServer
    let catalog: BridgeCatalog

    public init(config: WireConfig, catalog: BridgeCatalog, logger: Logger) {
        var generator = SystemRandomNumberGenerator()
        let users = config.users.mapValues { password in
            SCRAMCredentials(
                password: password, salt: (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        self.catalog = catalog
        let context = WireServerContext(
            catalog: catalog, users: users, grants: config.grants, maxScanBytes: config.maxScanBytes)
        server = WireServer(host: config.host, port: config.port, context: context, logger: logger)
    }

    public func run() async throws {
        try await catalog.open()
        do {
            try await server.run()
        } catch {
            await catalog.close()
            throw error
        }
        await catalog.close()
    }
}
