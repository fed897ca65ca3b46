import ArgumentParser
import Contracts
import Foundation
import MeridianRPC
import StandardProtos
import SwiftProtobuf

/// `platform`: call the platform's main RPCs from a terminal, with readable
/// output. Every subcommand acts for one tenant (`--tenant`, default demo)
/// against the local platform's ports unless told otherwise.
@main
struct PlatformCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "platform",
        abstract: "Call Meridian's services from a terminal.",
        subcommands: [Recommend.self, Rank.self, Catalog.self, Features.self, Assign.self, Health.self])
}

/// Where the services are, and for which tenant to call.
struct Endpoints: ParsableArguments {
    @Option(help: "Tenant to act for (x-tenant-id).")
    var tenant = "demo"
    @Option(help: "Host the services listen on.")
    var host = "127.0.0.1"
    @Option(name: .customLong("catalog"), help: "catalog host:port (default <host>:7101).")
    var catalogAddress: String?
    @Option(name: .customLong("feature-store"), help: "feature-store host:port (default <host>:7102).")
    var featureStoreAddress: String?
    @Option(name: .customLong("inference"), help: "inference host:port (default <host>:7103).")
    var inferenceAddress: String?
    @Option(name: .customLong("experimentation"), help: "experimentation host:port (default <host>:7104).")
    var experimentationAddress: String?
    @Option(name: .customLong("personalization"), help: "personalization host:port (default <host>:7105).")
    var personalizationAddress: String?
    @Option(help: "Seconds to wait for each answer.")
    var timeout: Double = 5

    static let services = ["catalog": 7101, "feature-store": 7102, "inference": 7103, "experimentation": 7104, "personalization": 7105]

    func address(_ service: String) -> String {
        let given = [
            "catalog": catalogAddress, "feature-store": featureStoreAddress, "inference": inferenceAddress,
            "experimentation": experimentationAddress, "personalization": personalizationAddress,
        ][service] ?? nil
        return given ?? "\(host):\(Self.services[service]!)"
    }

    func channel(_ service: String) throws -> RPCChannel { try RPCChannel(target: address(service)) }

    var options: CallOptions {
        var options = CallOptions(timeout: .milliseconds(Int(timeout * 1000)))
        options.metadata.add("x-tenant-id", tenant)
        return options
    }
}

/// Runs `body` with a channel, closing it after, and turns RPC failures
/// into a readable message and exit code 1.
func withChannel<T>(_ endpoints: Endpoints, _ service: String, _ body: (RPCChannel) async throws -> T) async throws -> T {
    let channel = try endpoints.channel(service)
    do {
        let result = try await body(channel)
        await channel.close()
        return result
    } catch let error as RPCError {
        await channel.close()
        printError("\(service) at \(endpoints.address(service)): \(error.code) \(error.message)")
        throw ExitCode(1)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func money(_ price: Platform_Common_V1_Money) -> String {
    String(format: "%.2f %@", Double(price.units) + Double(price.nanos) / 1e9, price.currencyCode)
}

/// Titles and prices for showing product ids to a person; empty when the
/// catalog cannot say.
func productDetails(_ ids: [String], endpoints: Endpoints) async -> [String: Platform_Catalog_V1_Product] {
    guard !ids.isEmpty, let channel = try? endpoints.channel("catalog") else { return [:] }
    defer { Task { await channel.close() } }
    let client = Platform_Catalog_V1_CatalogServiceClient(channel: channel)
    guard let response = try? await client.batchGetProducts(.with { $0.productIds = ids }, options: endpoints.options) else { return [:] }
    return Dictionary(response.products.map { ($0.productID, $0) }, uniquingKeysWith: { first, _ in first })
}

func printRanking(_ items: [Platform_Personalization_V1_ScoredItem], metadata: Platform_Personalization_V1_RankingMetadata, endpoints: Endpoints) async {
    let details = await productDetails(items.map(\.productID), endpoints: endpoints)
    let model = metadata.modelName.isEmpty ? "popularity (no model)" : "\(metadata.modelName) v\(metadata.modelVersion)"
    let variations = metadata.variations.map { "\($0.experimentKey)=\($0.variationKey)" }.joined(separator: ", ")
    print("recommendation \(metadata.recommendationID)  model \(model)  variations \(variations.isEmpty ? "none" : variations)")
    for reason in metadata.degradationReasons {
        print("  degraded: \(reason.dependency) failed (\(reason.reason)); used \(reason.fallback)")
    }
    print("  #  " + padded("product", 11) + padded("score", 9) + padded("category", 23) + padded("price", 12) + "title")
    for (index, item) in items.enumerated() {
        let product = details[item.productID]
        print(padded(String(format: "%3d", index + 1), 5) + padded(item.productID, 11) + padded(String(format: "%.4f", item.score), 9)
              + padded(item.category, 23) + padded(product.map { money($0.price) } ?? "", 12) + (product?.title ?? ""))
    }
}

struct Recommend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Recommendations for a user (personalization Recommend).")
    @OptionGroup var endpoints: Endpoints
    @Option(help: "The user.") var user: String
    @Option(help: "How many results.") var count: Int32 = 10
    @Option(help: "Only this category (repeatable).") var category: [String] = []
    @Option(help: "Lowest price, in --currency.") var minPrice: Double?
    @Option(help: "Highest price, in --currency.") var maxPrice: Double?
    @Option(help: "Currency of the price bounds.") var currency = "EUR"
    @Option(help: "Product never to return (repeatable).") var exclude: [String] = []
    @Option(help: "Context entry key=value (repeatable), e.g. page=home.") var context: [String] = []

    func run() async throws {
        func bound(_ value: Double) -> Platform_Common_V1_Money {
            .with { $0.currencyCode = currency; $0.units = Int64(value.rounded(.down)); $0.nanos = Int32(((value - value.rounded(.down)) * 1e9).rounded()) }
        }
        let request = Platform_Personalization_V1_RecommendRequest.with {
            $0.userID = user
            $0.numResults = count
            $0.categories = category
            $0.excludeIds = exclude
            if minPrice != nil || maxPrice != nil {
                $0.priceRange = .with { range in
                    if let minPrice { range.min = bound(minPrice) }
                    if let maxPrice { range.max = bound(maxPrice) }
                }
            }
            for entry in context {
                let parts = entry.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { $0.context[String(parts[0])] = String(parts[1]) }
            }
        }
        let response = try await withChannel(endpoints, "personalization") {
            try await Platform_Personalization_V1_PersonalizationServiceClient(channel: $0).recommend(request, options: endpoints.options)
        }
        print("for user \(user):")
        await printRanking(response.items, metadata: response.metadata, endpoints: endpoints)
    }
}

struct Rank: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Order given products for a user (personalization RankItems).")
    @OptionGroup var endpoints: Endpoints
    @Option(help: "The user.") var user: String
    @Argument(help: "Product ids.") var products: [String]

    func run() async throws {
        let response = try await withChannel(endpoints, "personalization") {
            try await Platform_Personalization_V1_PersonalizationServiceClient(channel: $0)
                .rankItems(.with { $0.userID = user; $0.productIds = products }, options: endpoints.options)
        }
        await printRanking(response.items, metadata: response.metadata, endpoints: endpoints)
        if !response.unknownProductIds.isEmpty { print("unknown: \(response.unknownProductIds.joined(separator: ", "))") }
    }
}

struct Catalog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the catalog.", subcommands: [Get.self, List.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One product (GetProduct).")
        @OptionGroup var endpoints: Endpoints
        @Argument(help: "Product id.") var productID: String

        func run() async throws {
            let product = try await withChannel(endpoints, "catalog") {
                try await Platform_Catalog_V1_CatalogServiceClient(channel: $0).getProduct(.with { $0.productID = productID }, options: endpoints.options)
            }
            print("\(product.productID)  \(product.title)")
            print("  brand \(product.brand)  price \(money(product.price))  \(product.availability) (\(product.availableQuantity) in stock)")
            print("  categories \(product.categories.joined(separator: " > "))")
            for (key, value) in product.attributes.sorted(by: { $0.key < $1.key }) { print("  \(key): \(value)") }
            print("  etag \(product.etag)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A page of products (ListProducts).")
        @OptionGroup var endpoints: Endpoints
        @Option(help: "AIP-160 filter, e.g. 'category = \"home/kitchen\" AND price < 50'.") var filter = ""
        @Option(help: "Sort order, e.g. 'price desc'.") var orderBy = ""
        @Option(help: "Products to show.") var count: Int32 = 20

        func run() async throws {
            let page = try await withChannel(endpoints, "catalog") {
                try await Platform_Catalog_V1_CatalogServiceClient(channel: $0)
                    .listProducts(.with { $0.filter = filter; $0.orderBy = orderBy; $0.pageSize = count }, options: endpoints.options)
            }
            for product in page.products {
                print(padded(product.productID, 11) + padded(money(product.price), 12) + padded(product.categories.last ?? "", 23) + product.title)
            }
        }
    }
}

struct Features: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read online features.", subcommands: [Get.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Feature values for entities (GetOnlineFeatures).")
        @OptionGroup var endpoints: Endpoints
        @Option(help: "Entity join key and value, e.g. user_id=u42 (repeat for more rows).") var entity: [String]
        @Argument(help: "Feature references view:feature, e.g. user_stats:purchases.") var features: [String]

        func run() async throws {
            var columns: [String: Platform_Featurestore_V1_RepeatedValue] = [:]
            for pair in entity {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw ValidationError("--entity takes key=value, got \(pair)") }
                columns[String(parts[0]), default: .init()].val.append(.with { $0.stringVal = String(parts[1]) })
            }
            let response = try await withChannel(endpoints, "feature-store") {
                try await Platform_Featurestore_V1_FeatureStoreServiceClient(channel: $0)
                    .getOnlineFeatures(.with { $0.features.val = features; $0.entities = columns }, options: endpoints.options)
            }
            let names = response.metadata.featureNames.val
            let rows = response.results.first?.values.count ?? 0
            for row in 0..<rows {
                print("row \(row + 1):")
                for (name, column) in zip(names, response.results) {
                    let value = column.values[row]
                    let text = value.val.map { "\($0)" } ?? "-"
                    print("  " + padded(name, 24) + padded("\(column.statuses[row])", 16) + text)
                }
            }
        }
    }
}

struct Assign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A user's experiment variations (GetAssignments).")
    @OptionGroup var endpoints: Endpoints
    @Option(help: "The user (attribute id).") var user: String
    @Option(help: "Only this experiment (repeatable).") var experiment: [String] = []

    func run() async throws {
        let response = try await withChannel(endpoints, "experimentation") {
            try await Platform_Experimentation_V1_ExperimentationServiceClient(channel: $0).getAssignments(.with {
                $0.attributes.fields["id"] = Google_Protobuf_Value(stringValue: user)
                $0.experimentKeys = experiment
            }, options: endpoints.options)
        }
        if response.assignments.isEmpty { print("no running experiments") }
        for assignment in response.assignments {
            let value = (try? assignment.value.jsonString()) ?? ""
            print(padded(assignment.experimentKey, 20) + (assignment.inExperiment ? padded(assignment.variationKey, 14) + value : "not in the experiment"))
        }
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Health of every service (grpc.health.v1).")
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        var allServing = true
        for service in ["catalog", "feature-store", "inference", "experimentation", "personalization"] {
            let status: String
            if let channel = try? endpoints.channel(service) {
                do {
                    let response = try await Grpc_Health_V1_HealthClient(channel: channel).check(.init(), options: CallOptions(timeout: .seconds(2)))
                    status = response.status == .serving ? "SERVING" : "\(response.status)"
                } catch let error as RPCError {
                    status = "\(error.code)"
                }
                await channel.close()
            } else { status = "bad address" }
            if status != "SERVING" { allServing = false }
            print(padded(service, 17) + padded(endpoints.address(service), 18) + status)
        }
        if !allServing { throw ExitCode(1) }
    }
}
