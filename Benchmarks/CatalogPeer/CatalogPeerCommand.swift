import ArgumentParser
import Contracts
import Foundation
import Logging
import MeridianRPC
import ServiceKit
import StandardServices
import SwiftProtobuf

/// `catalog-peer`: `platform.catalog.v1.CatalogService` from memory on the
/// Meridian runtime, with the same products and behaviour as the gRPC C++,
/// grpc-swift-2 and grpcio peers in `Benchmarks/peers/`, so the benchmark
/// compares runtimes rather than storage.
@main
struct CatalogPeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog-peer",
        abstract: "Serves the catalog from memory on the Meridian runtime, for benchmarks against other gRPC servers.")

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free one.")
    var port = 7205

    @Option(help: "Products as one binary ListProductsResponse (catalog_peer.py --export FILE writes it).")
    var productsFile: String

    @Option(help: "The tenant that owns the products; others see an empty catalog.")
    var tenant = "demo"

    func run() async throws {
        ProcessCPUs.sizeEventLoopsToAffinity()
        var logger = Logger(label: "catalog-peer")
        logger.logLevel = .warning
        let listing = try Platform_Catalog_V1_ListProductsResponse(serializedBytes: Data(contentsOf: URL(fileURLWithPath: productsFile)))
        let catalog = MemoryCatalog(products: listing.products, tenant: tenant)
        let health = HealthService()
        health.setStatus(.serving)
        health.setStatus(.serving, for: Platform_Catalog_V1_CatalogService.name)
        var configuration = RPCServer.Configuration.defaults
        configuration.host = host
        configuration.port = port
        let server = RPCServer(configuration: configuration, services: [catalog, health], logger: logger)
        let address = try await server.start()
        FileHandle.standardOutput.write(Data("listening on \(address.port ?? 0)\n".utf8))
        await Signals.waitForTermination()
        await server.shutdown(gracePeriod: .seconds(1))
    }
}

/// The peers' shared behaviour (see `Benchmarks/peers/python/README.md`):
/// reads only, no filters, WatchProducts replays one creation per product
/// after a decimal resume token and then ends.
struct MemoryCatalog: Platform_Catalog_V1_CatalogServiceHandler {
    let ordered: [Platform_Catalog_V1_Product]
    let byID: [String: Platform_Catalog_V1_Product]
    let changes: [Platform_Catalog_V1_ProductChange]
    let tenant: String

    init(products: [Platform_Catalog_V1_Product], tenant: String) {
        ordered = products
        byID = Dictionary(products.map { ($0.productID, $0) }, uniquingKeysWith: { first, _ in first })
        changes = products.enumerated().map { index, product in
            .with {
                $0.changeType = .created
                $0.productID = product.productID
                $0.product = product
                $0.changeTime = product.createTime
                $0.resumeToken = String(index + 1)
                $0.sequence = Int64(index + 1)
            }
        }
        self.tenant = tenant
    }

    /// Whether the caller's tenant owns the products; UNAUTHENTICATED without one.
    private func ownsProducts(_ context: ServerContext) throws -> Bool {
        guard let caller = context.requestMetadata["x-tenant-id"], !caller.isEmpty else {
            throw RPCError(.unauthenticated, "x-tenant-id metadata is required")
        }
        return caller == tenant
    }

    func getProduct(request: Platform_Catalog_V1_GetProductRequest, context: ServerContext) async throws -> Platform_Catalog_V1_Product {
        let owns = try ownsProducts(context)
        guard !request.productID.isEmpty else { throw RPCError(.invalidArgument, "product_id is required") }
        guard owns, let product = byID[request.productID] else {
            throw RPCError(.notFound, "product \(request.productID) not found")
        }
        return product
    }

    func batchGetProducts(request: Platform_Catalog_V1_BatchGetProductsRequest, context: ServerContext) async throws -> Platform_Catalog_V1_BatchGetProductsResponse {
        let owns = try ownsProducts(context)
        guard request.productIds.count <= 1000 else { throw RPCError(.invalidArgument, "product_ids holds more than 1000 ids") }
        var response = Platform_Catalog_V1_BatchGetProductsResponse()
        for id in request.productIds {
            if owns, let product = byID[id] { response.products.append(product) } else { response.missingProductIds.append(id) }
        }
        return response
    }

    func listProducts(request: Platform_Catalog_V1_ListProductsRequest, context: ServerContext) async throws -> Platform_Catalog_V1_ListProductsResponse {
        let owns = try ownsProducts(context)
        guard request.pageSize >= 0 else { throw RPCError(.invalidArgument, "page_size must not be negative") }
        guard request.filter.isEmpty, request.orderBy.isEmpty else {
            throw RPCError(.invalidArgument, "the peer supports neither filter nor order_by")
        }
        let size = request.pageSize == 0 ? 50 : Int(min(request.pageSize, 1000))
        let all = owns ? ordered : []
        guard let start = request.pageToken.isEmpty ? 0 : Int(request.pageToken), start >= 0 else {
            throw RPCError(.invalidArgument, "page_token is malformed")
        }
        let end = min(start + size, all.count)
        return .with {
            $0.products = start < end ? Array(all[start..<end]) : []
            $0.nextPageToken = start + size < all.count ? String(start + size) : ""
            $0.totalSize = Int32(all.count)
        }
    }

    func watchProducts(request: Platform_Catalog_V1_WatchProductsRequest, responses: RPCResponseWriter<Platform_Catalog_V1_ProductChange>, context: ServerContext) async throws {
        guard try ownsProducts(context) else { return }
        guard let after = request.resumeToken.isEmpty ? 0 : Int(request.resumeToken), after >= 0 else {
            throw RPCError(.invalidArgument, "resume_token is malformed")
        }
        let wanted = Set(request.categories)
        for change in changes.dropFirst(after) where wanted.isEmpty || !wanted.isDisjoint(with: change.product.categories) {
            try await responses.write(change)
        }
    }

    func searchProducts(request: Platform_Catalog_V1_SearchProductsRequest, context: ServerContext) async throws -> Platform_Catalog_V1_SearchProductsResponse {
        throw RPCError(.unimplemented, "the peer serves reads only")
    }

    func createProduct(request: Platform_Catalog_V1_CreateProductRequest, context: ServerContext) async throws -> Platform_Catalog_V1_Product {
        throw RPCError(.unimplemented, "the peer serves reads only")
    }

    func updateProduct(request: Platform_Catalog_V1_UpdateProductRequest, context: ServerContext) async throws -> Platform_Catalog_V1_Product {
        throw RPCError(.unimplemented, "the peer serves reads only")
    }

    func deleteProduct(request: Platform_Catalog_V1_DeleteProductRequest, context: ServerContext) async throws -> Platform_Catalog_V1_DeleteProductResponse {
        throw RPCError(.unimplemented, "the peer serves reads only")
    }

    func importProducts(requests: RPCRequestStream<Platform_Catalog_V1_ImportProductsRequest>, context: ServerContext) async throws -> Platform_Catalog_V1_ImportProductsResponse {
        throw RPCError(.unimplemented, "the peer serves reads only")
    }
}
