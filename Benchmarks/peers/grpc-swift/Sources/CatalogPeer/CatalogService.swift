import Foundation
import GRPCCore
import SwiftProtobuf

/// The peer's products and the rules of catalog_peer.py (the grpcio peer):
/// what each method answers, or the error it fails with.
struct Catalog: Sendable {
    let tenant: String
    let ordered: [Platform_Catalog_V1_Product]
    let byID: [String: Platform_Catalog_V1_Product]
    /// The change feed WatchProducts replays: one CHANGE_TYPE_CREATED per
    /// product, sequence = index + 1.
    let changes: [Platform_Catalog_V1_ProductChange]

    init(products: [Platform_Catalog_V1_Product], tenant: String) {
        self.tenant = tenant
        self.ordered = products
        var byID: [String: Platform_Catalog_V1_Product] = [:]
        byID.reserveCapacity(products.count)
        for product in products {
            byID[product.productID] = product
        }
        self.byID = byID
        self.changes = products.enumerated().map { index, product in
            let sequence = Int64(index + 1)
            return .with {
                $0.changeType = .created
                $0.productID = product.productID
                $0.product = product
                $0.changeTime = product.createTime
                $0.resumeToken = String(sequence)
                $0.sequence = sequence
            }
        }
    }

    /// Reads a binary ListProductsResponse holding every product in order
    /// (`catalog_peer.py --export FILE` writes one).
    init(productsFile path: String, tenant: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let response = try Platform_Catalog_V1_ListProductsResponse(serializedBytes: data)
        self.init(products: response.products, tenant: tenant)
    }

    /// Whether the caller's tenant owns the products: another tenant sees an
    /// empty catalog; no (or an empty) `x-tenant-id` is UNAUTHENTICATED.
    private func ownsProducts(_ metadata: Metadata) throws -> Bool {
        // The last value wins, as with Python's dict(metadata).
        var tenant: String?
        for value in metadata[stringValues: "x-tenant-id"] {
            tenant = value
        }
        guard let tenant, !tenant.isEmpty else {
            throw RPCError(code: .unauthenticated, message: "x-tenant-id metadata is required")
        }
        return tenant == self.tenant
    }

    func getProduct(_ request: Platform_Catalog_V1_GetProductRequest, metadata: Metadata) throws
        -> Platform_Catalog_V1_Product
    {
        let owned = try self.ownsProducts(metadata)
        if request.productID.isEmpty {
            throw RPCError(code: .invalidArgument, message: "product_id is required")
        }
        guard owned, let product = self.byID[request.productID] else {
            throw RPCError(code: .notFound, message: "product \(request.productID) not found")
        }
        return product
    }

    func batchGetProducts(_ request: Platform_Catalog_V1_BatchGetProductsRequest, metadata: Metadata) throws
        -> Platform_Catalog_V1_BatchGetProductsResponse
    {
        let owned = try self.ownsProducts(metadata)
        if request.productIds.count > 1000 {
            throw RPCError(code: .invalidArgument, message: "product_ids holds more than 1000 ids")
        }
        var response = Platform_Catalog_V1_BatchGetProductsResponse()
        for id in request.productIds {
            if owned, let product = self.byID[id] {
                response.products.append(product)
            } else {
                response.missingProductIds.append(id)
            }
        }
        return response
    }

    func listProducts(_ request: Platform_Catalog_V1_ListProductsRequest, metadata: Metadata) throws
        -> Platform_Catalog_V1_ListProductsResponse
    {
        let owned = try self.ownsProducts(metadata)
        if request.pageSize < 0 {
            throw RPCError(code: .invalidArgument, message: "page_size must not be negative")
        }
        if !request.filter.isEmpty || !request.orderBy.isEmpty {
            throw RPCError(code: .invalidArgument, message: "the peer supports neither filter nor order_by")
        }
        let size = request.pageSize == 0 ? 50 : Int(min(request.pageSize, 1000))
        let ordered = owned ? self.ordered : []
        guard let start = Self.decimal(request.pageToken) else {
            throw RPCError(code: .invalidArgument, message: "page_token is malformed")
        }
        let (following, overflow) = start.addingReportingOverflow(size)
        var response = Platform_Catalog_V1_ListProductsResponse()
        response.products = Array(ordered[Self.slice(ordered.count, from: start, to: overflow ? Int.max : following)])
        response.nextPageToken = !overflow && following < ordered.count ? String(following) : ""
        response.totalSize = Int32(ordered.count)
        return response
    }

    func watchProducts(_ request: Platform_Catalog_V1_WatchProductsRequest, metadata: Metadata) throws
        -> ArraySlice<Platform_Catalog_V1_ProductChange>
    {
        guard try self.ownsProducts(metadata), !self.changes.isEmpty else {
            return []
        }
        guard let after = Self.decimal(request.resumeToken) else {
            throw RPCError(code: .invalidArgument, message: "resume_token is malformed")
        }
        let changes = self.changes[Self.slice(self.changes.count, from: after, to: Int.max)]
        if request.categories.isEmpty {
            return changes
        }
        let wanted = Set(request.categories)
        return ArraySlice(changes.filter { change in change.product.categories.contains(where: wanted.contains) })
    }

    /// A page token or resume token: a decimal number, "" meaning 0.
    private static func decimal(_ token: String) -> Int? {
        token.isEmpty ? 0 : Int(token)
    }

    /// The range of Python's `items[start:stop]` (negative bounds count from
    /// the end), so odd tokens behave as in the grpcio peer.
    private static func slice(_ count: Int, from start: Int, to stop: Int) -> Range<Int> {
        func bound(_ index: Int) -> Int {
            index < 0 ? max(0, index + count) : min(index, count)
        }
        let lower = bound(start)
        return lower..<max(lower, bound(stop))
    }
}

/// platform.catalog.v1.CatalogService on the generated grpc-swift-2 stubs.
/// The full ServiceProtocol (not the Simple one) because every call reads
/// the request metadata.
struct CatalogService: Platform_Catalog_V1_CatalogService.ServiceProtocol {
    let catalog: Catalog

    func getProduct(
        request: ServerRequest<Platform_Catalog_V1_GetProductRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_Product> {
        ServerResponse(message: try self.catalog.getProduct(request.message, metadata: request.metadata))
    }

    func batchGetProducts(
        request: ServerRequest<Platform_Catalog_V1_BatchGetProductsRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_BatchGetProductsResponse> {
        ServerResponse(message: try self.catalog.batchGetProducts(request.message, metadata: request.metadata))
    }

    func listProducts(
        request: ServerRequest<Platform_Catalog_V1_ListProductsRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_ListProductsResponse> {
        ServerResponse(message: try self.catalog.listProducts(request.message, metadata: request.metadata))
    }

    func watchProducts(
        request: ServerRequest<Platform_Catalog_V1_WatchProductsRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Platform_Catalog_V1_ProductChange> {
        let changes = try self.catalog.watchProducts(request.message, metadata: request.metadata)
        return StreamingServerResponse { writer in
            try await writer.write(contentsOf: changes)
            return [:]
        }
    }

    // The rest of the contract: UNIMPLEMENTED, with grpcio's message.

    private static var unimplemented: RPCError {
        RPCError(code: .unimplemented, message: "Method not implemented!")
    }

    func searchProducts(
        request: ServerRequest<Platform_Catalog_V1_SearchProductsRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_SearchProductsResponse> {
        throw Self.unimplemented
    }

    func createProduct(
        request: ServerRequest<Platform_Catalog_V1_CreateProductRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_Product> {
        throw Self.unimplemented
    }

    func updateProduct(
        request: ServerRequest<Platform_Catalog_V1_UpdateProductRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_Product> {
        throw Self.unimplemented
    }

    func deleteProduct(
        request: ServerRequest<Platform_Catalog_V1_DeleteProductRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_DeleteProductResponse> {
        throw Self.unimplemented
    }

    func importProducts(
        request: StreamingServerRequest<Platform_Catalog_V1_ImportProductsRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Platform_Catalog_V1_ImportProductsResponse> {
        throw Self.unimplemented
    }
}
