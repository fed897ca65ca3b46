import Contracts
import Foundation
import Logging
import MeridianRPC
import ServiceKit
import StandardProtos
import StandardServices
import SwiftProtobuf

/// `platform.catalog.v1.CatalogService`: request validation, update masks,
/// etags, idempotency and paging over a `ProductStore`.
public struct CatalogHandler: Platform_Catalog_V1_CatalogServiceHandler {
    public struct Configuration: Sendable {
        /// Products committed per transaction by ImportProducts.
        public var importBatchSize = 500
        /// Most ids per BatchGetProducts.
        public var maxBatchGet = 1000

        public static var defaults: Configuration { Configuration() }
    }

    let store: any ProductStore
    let tokens: PageTokenCodec
    let configuration: Configuration
    let logger: Logger

    public init(store: any ProductStore, pageTokenSecret: Data, configuration: Configuration = .defaults, logger: Logger) {
        self.store = store
        self.tokens = PageTokenCodec(secret: pageTokenSecret)
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: Reads

    public func getProduct(request: Platform_Catalog_V1_GetProductRequest, context: ServerContext) async throws -> Product {
        let tenant = try TenantID.from(context)
        try check(ProductValidation.productIDViolations(request.productID))
        guard let product = try await store.products(tenant: tenant, ids: [request.productID])[request.productID] else {
            throw notFound(request.productID)
        }
        return product
    }

    /// GetProduct answered on the event loop when the store knows the id
    /// in memory (see `CachedProductStore`); nil otherwise.
    func productAtOnce(_ request: Platform_Catalog_V1_GetProductRequest, context: ServerContext) throws -> Product? {
        let tenant = try TenantID.from(context)
        try check(ProductValidation.productIDViolations(request.productID))
        switch store.knownProduct(tenant: tenant, id: request.productID) {
        case nil: return nil
        case .missing: throw notFound(request.productID)
        case .found(_, let encoded):
            // The response is the product: its fields go out as encoded when cached.
            context.appendEncodedResponseFields(encoded)
            return Product()
        }
    }

    /// The service as hosted: the generated methods, with GetProduct
    /// answered at once from memory when it can be.
    var hostedService: any RPCService {
        replacingMethods([
            .unary(Platform_Catalog_V1_CatalogService.Method.getProduct,
                   decode: { payload throws(RPCError) in try Platform_Catalog_V1_GetProductRequest(rpcPayload: payload) },
                   immediately: { request, context in try productAtOnce(request, context: context) }) { request, context in
                try await getProduct(request: request, context: context)
            },
        ])
    }

    public func batchGetProducts(request: Platform_Catalog_V1_BatchGetProductsRequest, context: ServerContext) async throws -> Platform_Catalog_V1_BatchGetProductsResponse {
        let tenant = try TenantID.from(context)
        guard request.productIds.count <= configuration.maxBatchGet else {
            throw RPCError.invalidArgument(violations: [FieldViolation("product_ids", "at most \(configuration.maxBatchGet) ids per call, got \(request.productIds.count)")])
        }
        try check(request.productIds.enumerated().flatMap { ProductValidation.productIDViolations($1, field: "product_ids[\($0)]") })
        let found = try await store.products(tenant: tenant, ids: Array(Set(request.productIds)))
        return .with { response in
            for id in request.productIds {
                if let product = found[id] { response.products.append(product) } else { response.missingProductIds.append(id) }
            }
        }
    }

    public func listProducts(request: Platform_Catalog_V1_ListProductsRequest, context: ServerContext) async throws -> Platform_Catalog_V1_ListProductsResponse {
        let tenant = try TenantID.from(context)
        let pageSize = try effectivePageSize(request.pageSize)
        let query = ProductQuery(filter: try ProductFilter.parse(request.filter), order: try ProductOrder.parse(request.orderBy))
        let fingerprint = "list|\(request.filter)|\(request.orderBy)"
        let cursor = request.pageToken.isEmpty ? nil : try tokens.decode(request.pageToken, requestFingerprint: fingerprint)
        // One extra row tells whether another page follows.
        let (products, total) = try await store.list(tenant: tenant, query: query, after: cursor, limit: pageSize + 1)
        return .with { response in
            response.products = Array(products.prefix(pageSize))
            response.totalSize = Int32(clamping: total)
            if products.count > pageSize, let last = response.products.last {
                response.nextPageToken = tokens.encode(
                    PageCursor(value: ProductSQL.sortKey(of: last, for: query.order.field), id: last.productID),
                    requestFingerprint: fingerprint)
            }
        }
    }

    public func searchProducts(request: Platform_Catalog_V1_SearchProductsRequest, context: ServerContext) async throws -> Platform_Catalog_V1_SearchProductsResponse {
        let tenant = try TenantID.from(context)
        let pageSize = try effectivePageSize(request.pageSize)
        guard !request.query.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw RPCError.invalidArgument(violations: [FieldViolation("query", "is required", reason: "REQUIRED")])
        }
        let filter = try ProductFilter.parse(request.filter)
        let fingerprint = "search|\(request.query)|\(request.filter)"
        let cursor = request.pageToken.isEmpty ? nil : try tokens.decode(request.pageToken, requestFingerprint: fingerprint)
        let hits = try await store.search(tenant: tenant, text: request.query, filter: filter, after: cursor, limit: pageSize + 1)
        return .with { response in
            // bm25 is lower-is-better; relevance is reported higher-is-better.
            response.results = hits.prefix(pageSize).map { hit in .with { $0.product = hit.product; $0.relevance = -hit.relevance } }
            if hits.count > pageSize, let last = hits.prefix(pageSize).last {
                response.nextPageToken = tokens.encode(PageCursor(value: String(last.relevance), id: last.product.productID),
                                                       requestFingerprint: fingerprint)
            }
        }
    }

    // MARK: Writes

    public func createProduct(request: Platform_Catalog_V1_CreateProductRequest, context: ServerContext) async throws -> Product {
        let tenant = try TenantID.from(context)
        var violations = ProductValidation.productIDViolations(request.productID) + ProductValidation.violations(of: request.product)
        if !request.product.productID.isEmpty, request.product.productID != request.productID {
            violations.append(FieldViolation("product.product_id", "must be empty or equal product_id \"\(request.productID)\""))
        }
        try check(violations)
        let id = request.productID
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "CreateProduct", context: context)
        return try await modify(tenant: tenant, id: id, key: key) { current in
            if current != nil {
                throw RPCError.rich(.alreadyExists, "product \(id) already exists", reason: "PRODUCT_EXISTS", metadata: ["product_id": id])
            }
            return .save(Self.writable(request.product))
        }
    }

    public func updateProduct(request: Platform_Catalog_V1_UpdateProductRequest, context: ServerContext) async throws -> Product {
        let tenant = try TenantID.from(context)
        let id = request.product.productID
        try check(ProductValidation.productIDViolations(id, field: "product.product_id"))
        let paths = request.updateMask.paths
        try check(UpdateMask.violations(paths))
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "UpdateProduct", context: context)
        return try await modify(tenant: tenant, id: id, key: key) { current in
            guard let current else {
                guard request.allowMissing else { throw notFound(id) }
                try check(ProductValidation.violations(of: request.product))
                return .save(Self.writable(request.product))
            }
            try checkEtag(request.product.etag, current: current)
            let updated = UpdateMask.apply(paths, from: request.product, to: current)
            try check(ProductValidation.violations(of: updated))
            return .save(updated)
        }
    }

    public func deleteProduct(request: Platform_Catalog_V1_DeleteProductRequest, context: ServerContext) async throws -> Platform_Catalog_V1_DeleteProductResponse {
        let tenant = try TenantID.from(context)
        try check(ProductValidation.productIDViolations(request.productID))
        let id = request.productID
        let key = try IdempotencyKey.of(request, requestID: request.requestID, method: "DeleteProduct", context: context)
        _ = try await modify(tenant: tenant, id: id, key: key) { current in
            guard let current else {
                if request.allowMissing { return .none(nil) }
                throw notFound(id)
            }
            try checkEtag(request.etag, current: current)
            return .delete
        }
        return Platform_Catalog_V1_DeleteProductResponse()
    }

    public func importProducts(requests: RPCRequestStream<Platform_Catalog_V1_ImportProductsRequest>, context: ServerContext) async throws -> Platform_Catalog_V1_ImportProductsResponse {
        let tenant = try TenantID.from(context)
        var response = Platform_Catalog_V1_ImportProductsResponse()
        var pending: [Product] = []
        var index: Int32 = 0
        var requestID = context.requestMetadata["idempotency-key"] ?? ""

        func flush() async throws {
            guard !pending.isEmpty else { return }
            for created in try await store.upsertAll(tenant: tenant, products: pending) {
                if created { response.created += 1 } else { response.updated += 1 }
            }
            pending.removeAll(keepingCapacity: true)
        }

        for try await request in requests {
            guard request.products.count <= 1000 else {
                throw RPCError.invalidArgument(violations: [FieldViolation("products", "at most 1000 products per message, got \(request.products.count)")])
            }
            if requestID.isEmpty { requestID = request.requestID }
            if index == 0, !requestID.isEmpty {
                // A replayed import answers from its first run without writing.
                let probe = IdempotencyKey(method: "ImportProducts", key: requestID, requestHash: Data())
                if case .replay(let data) = try await store.idempotentResponse(tenant: tenant, key: probe) {
                    return try Platform_Catalog_V1_ImportProductsResponse(serializedBytes: data)
                }
            }
            for product in request.products {
                defer { index += 1 }
                let violations = ProductValidation.productIDViolations(product.productID, field: "product_id")
                    + ProductValidation.violations(of: product, prefix: "product")
                if !violations.isEmpty {
                    response.failed += 1
                    response.errors.append(.with {
                        $0.index = index
                        $0.productID = product.productID
                        $0.status = Self.status(of: RPCError.invalidArgument(violations: violations))
                    })
                    continue
                }
                pending.append(Self.writable(product))
                if pending.count >= configuration.importBatchSize { try await flush() }
            }
        }
        try await flush()
        if !requestID.isEmpty {
            try await store.saveIdempotentResponse(
                tenant: tenant, key: IdempotencyKey(method: "ImportProducts", key: requestID, requestHash: Data()),
                response: try response.serializedBytes())
        }
        return response
    }

    public func watchProducts(
        request: Platform_Catalog_V1_WatchProductsRequest,
        responses: RPCResponseWriter<Platform_Catalog_V1_ProductChange>,
        context: ServerContext
    ) async throws {
        let tenant = try TenantID.from(context)
        // Subscribe before reading so no commit falls between the two.
        let notifications = store.changeNotifications()
        let bounds = try await store.changeBounds(tenant: tenant)
        var cursor: Int64
        if request.resumeToken.isEmpty {
            cursor = bounds.newest
        } else {
            guard let sequence = ResumeToken.decode(request.resumeToken) else {
                throw RPCError.invalidArgument(violations: [FieldViolation("resume_token", "not a resume token issued by WatchProducts")])
            }
            if sequence < bounds.oldest - 1 {
                throw RPCError.rich(.outOfRange, "resume_token is older than the retained change history; list the catalog again and watch from now",
                                    reason: "RESUME_TOKEN_EXPIRED")
            }
            cursor = sequence
        }
        let categories = Set(request.categories)
        var iterator = notifications.makeAsyncIterator()
        try await responses.sendHeaders()  // the watch is live from here on
        while !Task.isCancelled {
            let batch = try await store.changes(tenant: tenant, after: cursor, limit: 500)
            for change in batch {
                cursor = change.sequence
                if !categories.isEmpty, change.type != .deleted,
                   categories.isDisjoint(with: change.product?.categories ?? []) { continue }
                try await responses.write(.with {
                    $0.changeType = change.type
                    $0.productID = change.productID
                    if let product = change.product { $0.product = product }
                    $0.changeTime = Google_Protobuf_Timestamp(date: change.time)
                    $0.sequence = change.sequence
                    $0.resumeToken = ResumeToken.encode(change.sequence)
                })
            }
            if batch.count < 500 {
                guard await iterator.next() != nil else { return }  // cancelled
            }
        }
    }

    // MARK: Helpers

    /// Runs a store modification, turning its outcomes into answers.
    private func modify(tenant: TenantID, id: String, key: IdempotencyKey?,
                        decide: @escaping @Sendable (Product?) throws -> ProductWrite) async throws -> Product {
        do {
            switch try await store.modify(tenant: tenant, productID: id, idempotency: key, decide: decide) {
            case .applied(let product): return product ?? Product()
            case .replayed(let data): return try Product(serializedBytes: data)
            }
        } catch StoreError.idempotencyConflict {
            throw key?.conflict ?? RPCError(.internal, "idempotency conflict without a key")
        }
    }

    private func checkEtag(_ etag: String, current: Product) throws {
        guard etag.isEmpty || etag == current.etag else {
            throw RPCError.rich(.aborted, "etag \(etag) is stale: product \(current.productID) is now at \(current.etag); read it again and retry",
                                reason: "STALE_ETAG", metadata: ["product_id": current.productID, "etag": current.etag])
        }
    }

    private func check(_ violations: [FieldViolation]) throws {
        if !violations.isEmpty { throw RPCError.invalidArgument(violations: violations) }
    }

    private func notFound(_ id: String) -> RPCError {
        RPCError.rich(.notFound, "product \(id) not found", reason: "PRODUCT_NOT_FOUND", metadata: ["product_id": id])
    }

    /// The fields a client may set; output-only ones are cleared.
    static func writable(_ product: Product) -> Product {
        var copy = product
        copy.clearCreateTime()
        copy.clearUpdateTime()
        copy.etag = ""
        return copy
    }

    static func status(of error: RPCError) -> Google_Rpc_Status {
        error.status.richStatus ?? .with { $0.code = Int32(error.code.rawValue); $0.message = error.message }
    }
}

/// AIP-134 update masks over Product.
enum UpdateMask {
    static let fields: Set<String> = [
        "title", "description", "categories", "brand", "attributes", "price", "availability", "available_quantity", "image_uris",
    ]

    static func violations(_ paths: [String]) -> [FieldViolation] {
        paths.compactMap { path in
            if fields.contains(path) { return nil }
            if path.hasPrefix("attributes."), path.count > "attributes.".count { return nil }
            if ["product_id", "create_time", "update_time", "etag"].contains(path) {
                return FieldViolation("update_mask", "\(path) cannot be changed")
            }
            return FieldViolation("update_mask", "unknown field path \"\(path)\"")
        }
    }

    /// `current` with the masked fields taken from `source`; an empty mask
    /// replaces every writable field.
    static func apply(_ paths: [String], from source: Product, to current: Product) -> Product {
        var result = current
        let effective = paths.isEmpty ? Array(fields) : paths
        for path in effective {
            switch path {
            case "title": result.title = source.title
            case "description": result.description_p = source.description_p
            case "categories": result.categories = source.categories
            case "brand": result.brand = source.brand
            case "attributes": result.attributes = source.attributes
            case "price": result.price = source.price
            case "availability": result.availability = source.availability
            case "available_quantity": result.availableQuantity = source.availableQuantity
            case "image_uris": result.imageUris = source.imageUris
            default:
                let key = String(path.dropFirst("attributes.".count))
                result.attributes[key] = source.attributes[key]  // absent in source: removed
            }
        }
        return result
    }
}

/// Change-feed resume tokens: the sequence of the last change delivered.
enum ResumeToken {
    static func encode(_ sequence: Int64) -> String {
        Data("c1:\(sequence)".utf8).base64EncodedString()
    }

    static func decode(_ token: String) -> Int64? {
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8), text.hasPrefix("c1:") else { return nil }
        return Int64(text.dropFirst(3))
    }
}
