import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// A catalog peer on grpc-swift-2 for benchmarks: serves
/// platform.catalog.v1.CatalogService from a products file over plaintext
/// HTTP/2 (grpc-swift-nio-transport, posix), like
/// Benchmarks/peers/python/catalog_peer.py does on grpcio.
@main
struct CatalogPeer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog-peer",
        abstract: "platform.catalog.v1.CatalogService on grpc-swift-2, for benchmarks."
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free one.")
    var port = 7204

    @Option(
        help: ArgumentHelp(
            "A binary ListProductsResponse with every product, in order.",
            discussion: "Made by `catalog_peer.py --export FILE`.",
            valueName: "file"
        )
    )
    var productsFile: String

    @Option(help: "The tenant that owns the products; others see an empty catalog.")
    var tenant = "demo"

    func run() async throws {
        let catalog: Catalog
        do {
            catalog = try Catalog(productsFile: self.productsFile, tenant: self.tenant)
        } catch {
            throw PeerError("cannot load --products-file \(self.productsFile): \(error)")
        }
        let address: GRPCNIOTransportCore.SocketAddress =
            self.host.contains(":") ? .ipv6(host: self.host, port: self.port) : .ipv4(host: self.host, port: self.port)
        let server = GRPCServer(
            transport: .http2NIOPosix(address: address, transportSecurity: .plaintext),
            services: [CatalogService(catalog: catalog)]
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            // When binding fails, listeningAddress only says the server
            // stopped; serve() then throws the reason (say, the port is in
            // use), so leave the error to it.
            guard let listening = try? await server.listeningAddress else { return }
            let port = listening.ipv4?.port ?? listening.ipv6?.port ?? self.port
            // Unbuffered (write(2)), so a script reading a pipe sees it at once.
            FileHandle.standardOutput.write(Data("listening on \(port)\n".utf8))
        }
    }
}

/// A failure reported as `Error: message` without the usage text.
struct PeerError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
