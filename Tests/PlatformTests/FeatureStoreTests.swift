import Contracts
import FeatureStoreServer
import Foundation
import MeridianRPC
import NIOCore
import ServiceKit
import StandardServices
import SwiftProtobuf
import Testing

/// The feature store over real RPC on loopback, started from its `buildService`.
final class FeatureStoreFixture: Sendable {
    let host: ServiceHost
    let channel: RPCChannel
    let client: Platform_Featurestore_V1_FeatureStoreServiceClient
    let dataDirectory: String

    let databaseURL: String?

    init(_ backend: Backend = .sqlite, dataDirectory: String? = nil, databaseURL: String? = nil,
         catalogAddress: String? = nil, catalogTenants: [String] = [], sharedRegistryRefresh: Duration = .seconds(5)) async throws {
        var configuration = ServiceConfiguration.forTesting(name: "feature-store")
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if let catalogAddress { configuration.dependencies["catalog"] = catalogAddress }
        if backend == .postgres {
            configuration.databaseURL = if let databaseURL { databaseURL } else { try await TestPostgres.createDatabase() }
        }
        self.dataDirectory = configuration.dataDirectory!
        self.databaseURL = configuration.databaseURL
        host = try await FeatureStoreServer.buildService(configuration: configuration, catalogTenants: catalogTenants,
                                                           sharedRegistryRefresh: sharedRegistryRefresh)
        let port = try await host.start()
        channel = try RPCChannel(host: "127.0.0.1", port: port)
        client = Platform_Featurestore_V1_FeatureStoreServiceClient(channel: channel)
    }

    func stop() async {
        await channel.close()
        await host.shutdown()
    }

    static let options: CallOptions = {
        var options = CallOptions(timeout: .seconds(10))
        options.metadata.add("x-tenant-id", "acme")
        return options
    }()

    /// `user_stats` keyed by user_id: purchases (int64), spend (double), segment (string).
    static func userStats(ttl: Int64 = 0) -> FeatureView {
        .with {
            $0.name = "user_stats"
            $0.entities = ["user_id"]
            $0.features = [
                .with { $0.name = "purchases"; $0.type = .int64 },
                .with { $0.name = "spend"; $0.type = .double },
                .with { $0.name = "segment"; $0.type = .string },
            ]
            if ttl > 0 { $0.ttl = .with { $0.seconds = ttl } }
        }
    }

    func apply(_ view: FeatureView) async throws -> Platform_Featurestore_V1_ApplyFeatureViewResponse {
        try await client.applyFeatureView(.with { $0.featureView = view }, options: Self.options)
    }

    static func row(user: String, time: Date, _ values: [String: FeatureValue]) -> Platform_Featurestore_V1_FeatureRow {
        .with {
            $0.entityKey = ["user_id": .with { $0.stringVal = user }]
            $0.values = values
            $0.eventTime = Google_Protobuf_Timestamp(date: time)
        }
    }

    func write(_ view: String, _ rows: [Platform_Featurestore_V1_FeatureRow], requestID: String = "") async throws -> Platform_Featurestore_V1_WriteFeaturesResponse {
        try await client.writeFeatures(.with { $0.featureView = view; $0.rows = rows; $0.requestID = requestID }, options: Self.options)
    }

    func lookup(_ references: [String], users: [String], fullNames: Bool = false) async throws -> Platform_Featurestore_V1_GetOnlineFeaturesResponse {
        try await client.getOnlineFeatures(.with {
            $0.features = .with { $0.val = references }
            $0.entities = ["user_id": .with { $0.val = users.map { user in .with { $0.stringVal = user } } }]
            $0.fullFeatureNames = fullNames
        }, options: Self.options)
    }
}

/// A length-delimited field, for requests written byte by byte.
func field(_ number: UInt8, _ payload: [UInt8]) -> [UInt8] {
    var bytes = [number << 3 | 2]
    var length = payload.count
    while length >= 0x80 { bytes.append(UInt8(length & 0x7F) | 0x80); length >>= 7 }
    return bytes + [UInt8(length)] + payload
}

func int64(_ value: Int64) -> FeatureValue { .with { $0.int64Val = value } }
func double(_ value: Double) -> FeatureValue { .with { $0.doubleVal = value } }
func string(_ value: String) -> FeatureValue { .with { $0.stringVal = value } }

@Suite struct FeatureStoreTests {
    @Test(arguments: Backend.allCases)
    func applyingViewsIsDeclarativeAndVersioned(backend: Backend) async throws {
        let store = try await FeatureStoreFixture(backend)
        let created = try await store.apply(FeatureStoreFixture.userStats())
        #expect(created.created && !created.changed && created.featureView.version == 1)
        let again = try await store.apply(FeatureStoreFixture.userStats())
        #expect(!again.created && !again.changed && again.featureView.version == 1)
        var wider = FeatureStoreFixture.userStats()
        wider.features.append(.with { $0.name = "country"; $0.type = .string })
        let changed = try await store.apply(wider)
        #expect(changed.changed && changed.featureView.version == 2)

        var retyped = wider
        retyped.features[0].type = .double
        await expectStatus(.failedPrecondition, mentioning: "purchases") { _ = try await store.apply(retyped) }
        var rekeyed = wider
        rekeyed.entities = ["customer_id"]
        await expectStatus(.failedPrecondition, mentioning: "join keys") { _ = try await store.apply(rekeyed) }
        do {
            _ = try await store.apply(.with {
                $0.name = "bad__name"
                $0.entities = []
                $0.features = [.with { $0.name = "x" }, .with { $0.name = "x"; $0.type = .int64 }]
                $0.ttl = .with { $0.seconds = -1 }
            })
            Issue.record("invalid view accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(Set(error.status.fieldViolations.map(\.field)).isSuperset(of: [
                "feature_view.name", "feature_view.entities", "feature_view.features[0].type", "feature_view.features[1].name", "feature_view.ttl"]))
        }

        // Feature services: projections must exist; projected features cannot be removed.
        await expectStatus(.failedPrecondition, mentioning: "item_stats") {
            _ = try await store.client.applyFeatureService(.with {
                $0.featureService = .with { $0.name = "ranker"; $0.projections = [.with { $0.featureViewName = "item_stats" }] }
            }, options: FeatureStoreFixture.options)
        }
        let service = try await store.client.applyFeatureService(.with {
            $0.featureService = .with { $0.name = "ranker"; $0.projections = [.with { $0.featureViewName = "user_stats"; $0.featureNames = ["spend", "country"] }] }
        }, options: FeatureStoreFixture.options)
        #expect(service.created && service.featureService.version == 1)
        await expectStatus(.failedPrecondition, mentioning: "ranker") { _ = try await store.apply(FeatureStoreFixture.userStats()) }
        await expectStatus(.failedPrecondition, mentioning: "ranker") {
            _ = try await store.client.deleteFeatureView(.with { $0.name = "user_stats" }, options: FeatureStoreFixture.options)
        }
        let listed = try await store.client.listFeatureViews(.init(), options: FeatureStoreFixture.options)
        #expect(listed.featureViews.map(\.name) == ["user_stats"] && listed.nextPageToken.isEmpty)
        await expectStatus(.notFound, mentioning: "nope") {
            _ = try await store.client.getFeatureView(.with { $0.name = "nope" }, options: FeatureStoreFixture.options)
        }
        await store.stop()
    }

    /// Lookups reuse what a selection resolved to, but never across a
    /// registry change: a widened service, a deleted view or other names
    /// show up in the very next lookup of the same selection.
    @Test func aRepeatedLookupFollowsRegistryChanges() async throws {
        let store = try await FeatureStoreFixture()
        _ = try await store.apply(FeatureStoreFixture.userStats())
        _ = try await store.write("user_stats", [FeatureStoreFixture.row(user: "u1", time: Date(), ["purchases": int64(3), "spend": double(9.5)])])
        func serviceLookup() async throws -> [String] {
            try await store.client.getOnlineFeatures(.with {
                $0.featureService = "ranker"
                $0.entities = ["user_id": .with { $0.val = [.with { $0.stringVal = "u1" }] }]
            }, options: FeatureStoreFixture.options).metadata.featureNames.val
        }
        func applyRanker(_ features: [String]) async throws {
            _ = try await store.client.applyFeatureService(.with {
                $0.featureService = .with { $0.name = "ranker"; $0.projections = [.with { $0.featureViewName = "user_stats"; $0.featureNames = features }] }
            }, options: FeatureStoreFixture.options)
        }
        try await applyRanker(["spend"])
        #expect(try await serviceLookup() == ["user_id", "spend"])
        #expect(try await serviceLookup() == ["user_id", "spend"])
        try await applyRanker(["purchases", "spend"])
        #expect(try await serviceLookup() == ["user_id", "purchases", "spend"])

        let references = ["user_stats:spend", "user_stats:purchases"]
        #expect(try await store.lookup(references, users: ["u1"]).metadata.featureNames.val == ["user_id", "spend", "purchases"])
        #expect(try await store.lookup(references, users: ["u1"], fullNames: true).metadata.featureNames.val
                == ["user_id", "user_stats__spend", "user_stats__purchases"])
        let again = try await store.lookup(references, users: ["u1"])
        #expect(again.metadata.featureNames.val == ["user_id", "spend", "purchases"])
        #expect(again.results[1].values[0].doubleVal == 9.5 && again.results[2].values[0].int64Val == 3)
        // The view's features in another order: cached rows encoded for the
        // old order are not read by position.
        var reordered = FeatureStoreFixture.userStats()
        reordered.features.reverse()
        #expect(try await store.apply(reordered).changed)
        let afterReorder = try await store.lookup(references, users: ["u1"])
        #expect(afterReorder.results[1].values[0].doubleVal == 9.5 && afterReorder.results[2].values[0].int64Val == 3)
        #expect(afterReorder.results[1].statuses == [.present] && afterReorder.results[2].statuses == [.present])
        // The same selection with a bad entity column is still checked.
        await expectStatus(.invalidArgument, mentioning: "customer_id") {
            _ = try await store.client.getOnlineFeatures(.with {
                $0.features = .with { $0.val = references }
                $0.entities = ["user_id": .with { $0.val = [.with { $0.stringVal = "u1" }] },
                               "customer_id": .with { $0.val = [.with { $0.stringVal = "c1" }] }]
            }, options: FeatureStoreFixture.options)
        }

        // A view no service uses, looked up, deleted, looked up again.
        var flags = FeatureStoreFixture.userStats()
        flags.name = "user_flags"
        _ = try await store.apply(flags)
        #expect(try await store.lookup(["user_flags:segment"], users: ["u1"]).results[1].statuses == [.notFound])
        _ = try await store.client.deleteFeatureView(.with { $0.name = "user_flags" }, options: FeatureStoreFixture.options)
        await expectStatus(.notFound, mentioning: "user_flags") { _ = try await store.lookup(["user_flags:segment"], users: ["u1"]) }
        await store.stop()
    }

    /// The join key columns echo the request's values exactly, including
    /// the oneof's defaults (0 and the empty string are values, not absent).
    /// GetOnlineFeatures keeps a plain reference list encoded, as its plan's
    /// key; every other encoding is read by SwiftProtobuf, and all give the
    /// same answer or error.
    @Test func referencesGiveTheSameAnswerHoweverEncoded() async throws {
        let store = try await FeatureStoreFixture()
        _ = try await store.apply(FeatureStoreFixture.userStats())
        _ = try await store.client.applyFeatureService(.with {
            $0.featureService = .with { $0.name = "ranker"; $0.projections = [.with { $0.featureViewName = "user_stats"; $0.featureNames = ["spend", "purchases"] }] }
        }, options: FeatureStoreFixture.options)
        _ = try await store.write("user_stats", [FeatureStoreFixture.row(user: "u1", time: Date(), ["purchases": int64(3), "spend": double(9.5), "segment": string("vip")])])
        let expected = try await store.lookup(["user_stats:spend", "user_stats:purchases"], users: ["u1", "u2"])
        #expect(expected.metadata.featureNames.val == ["user_id", "spend", "purchases"])
        #expect(expected.results[1].values[0].doubleVal == 9.5 && expected.results[2].statuses == [.present, .notFound])

        let entities = try field(3, field(1, Array("user_id".utf8)) + field(2, Platform_Featurestore_V1_RepeatedValue.with { $0.val = [string("u1"), string("u2")] }.serializedBytes()))
        let spend = field(1, Array("user_stats:spend".utf8)), purchases = field(1, Array("user_stats:purchases".utf8))
        let variants: [String: [UInt8]] = [
            "canonical": field(2, spend + purchases) + entities,
            "entities first": entities + field(2, spend + purchases),
            "the list in two parts, which merge": field(2, spend) + entities + field(2, purchases),
            "a feature service before the list, which wins": field(1, Array("nope".utf8)) + field(2, spend + purchases) + entities,
            "unknown fields": field(2, spend + purchases) + entities + [15 << 3, 1],
        ]
        let path = Platform_Featurestore_V1_FeatureStoreService.Method.getOnlineFeatures
        for (name, bytes) in variants {
            for _ in 0..<2 {  // the second time from the plan made the first
                let answer = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: bytes), options: FeatureStoreFixture.options)
                let response = try Platform_Featurestore_V1_GetOnlineFeaturesResponse(serializedBytes: Array(buffer: answer.message))
                #expect(response == expected, "\(name)")
            }
        }
        // The service after the list wins the oneof: its own column order.
        let service = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: field(2, spend) + field(1, Array("ranker".utf8)) + entities),
                                                    options: FeatureStoreFixture.options)
        #expect(try Platform_Featurestore_V1_GetOnlineFeaturesResponse(serializedBytes: Array(buffer: service.message)) == expected)
        await expectStatus(.invalidArgument, mentioning: "requested twice") {
            _ = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: field(2, spend + spend) + entities), options: FeatureStoreFixture.options)
        }
        await expectStatus(.invalidArgument, mentioning: "sp\u{00E9}nd") {
            _ = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: field(2, field(1, Array("user_stats:sp\u{00E9}nd".utf8))) + entities),
                                              options: FeatureStoreFixture.options)
        }
        await expectStatus(.internal, mentioning: "GetOnlineFeaturesRequest") {
            _ = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: field(2, field(1, [0x75, 0xFF])) + entities), options: FeatureStoreFixture.options)
        }
        await store.stop()
    }

    /// GetOnlineFeatures reads the usual entity map itself; every other
    /// encoding goes to SwiftProtobuf, and all give the same answer.
    @Test func entitiesGiveTheSameAnswerHoweverEncoded() async throws {
        let store = try await FeatureStoreFixture()
        _ = try await store.apply(FeatureStoreFixture.userStats())
        _ = try await store.write("user_stats", [
            FeatureStoreFixture.row(user: "u1", time: Date(), ["purchases": int64(3)]),
            FeatureStoreFixture.row(user: "u2", time: Date(), ["purchases": int64(5)]),
        ])
        let expected = try await store.lookup(["user_stats:purchases"], users: ["u1", "u2"])
        #expect(expected.results[1].values.map(\.int64Val) == [3, 5])

        func column(_ values: [FeatureValue]) throws -> [UInt8] {
            try field(2, Platform_Featurestore_V1_RepeatedValue.with { $0.val = values }.serializedBytes())
        }
        let references = field(2, field(1, Array("user_stats:purchases".utf8)))
        let key = field(1, Array("user_id".utf8))
        let users = try column([string("u1"), string("u2")])
        // A Value whose oneof is set twice: the last wins.
        let u1SetTwice = field(1, [2 << 3 | 2, 2, 0x7A, 0x7A, 2 << 3 | 2, 2, 0x75, 0x31])
        let variants: [String: [UInt8]] = try [
            "canonical": references + field(3, key + users),
            "value before key": references + field(3, users + key),
            "a repeated key, the last wins": references + field(3, key + column([string("u9")])) + field(3, key + users),
            "values in two parts, which merge": references + field(3, key + column([string("u1")]) + column([string("u2")])),
            "a value's oneof set twice": references + field(3, key + field(2, u1SetTwice + field(1, string("u2").serializedBytes()))),
            "full_feature_names false, said": references + field(3, key + users) + [4 << 3, 0],
            "request context": references + field(3, key + users) + field(5, field(1, Array("page".utf8)) + column([int64(1), int64(2)])),
        ]
        let path = Platform_Featurestore_V1_FeatureStoreService.Method.getOnlineFeatures
        for (name, bytes) in variants {
            for _ in 0..<2 {
                let answer = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: bytes), options: FeatureStoreFixture.options)
                let response = try Platform_Featurestore_V1_GetOnlineFeaturesResponse(serializedBytes: Array(buffer: answer.message))
                #expect(response == expected, "\(name)")
            }
        }
        // full_feature_names read from the bytes: the other plan, the other names.
        let full = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: references + field(3, key + users) + [4 << 3, 1]),
                                                 options: FeatureStoreFixture.options)
        #expect(try Platform_Featurestore_V1_GetOnlineFeaturesResponse(serializedBytes: Array(buffer: full.message)).metadata.featureNames.val
                == ["user_id", "user_stats__purchases"])
        await expectStatus(.invalidArgument, mentioning: "entities.user_id[1]") {
            _ = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: references + field(3, key + column([string("u1"), FeatureValue()]))),
                                              options: FeatureStoreFixture.options)
        }
        await expectStatus(.internal, mentioning: "GetOnlineFeaturesRequest") {
            _ = try await store.channel.unary(path: path, payload: ByteBuffer(bytes: references + field(3, field(1, [0x75, 0xFF]) + users)),
                                              options: FeatureStoreFixture.options)
        }
        await store.stop()
    }

    /// Replicas sharing PostgreSQL: a view applied through one is served by
    /// the other after its registry refresh, which never holds lookups up.
    @Test func aReplicaServesViewsAppliedThroughAnother() async throws {
        let first = try await FeatureStoreFixture(.postgres, sharedRegistryRefresh: .milliseconds(200))
        let second = try await FeatureStoreFixture(.postgres, databaseURL: first.databaseURL, sharedRegistryRefresh: .milliseconds(200))
        _ = try await first.apply(FeatureStoreFixture.userStats())
        _ = try await first.write("user_stats", [FeatureStoreFixture.row(user: "u1", time: Date(), ["purchases": int64(4)])])
        #expect(try await second.lookup(["user_stats:purchases"], users: ["u1"]).results[1].values[0].int64Val == 4)
        _ = try await second.apply(.with {
            $0.name = "user_clicks"
            $0.entities = ["user_id"]
            $0.features = [.with { $0.name = "clicks"; $0.type = .int64 }]
        })
        _ = try await second.write("user_clicks", [FeatureStoreFixture.row(user: "u1", time: Date(), ["clicks": int64(9)])])
        var seen = false
        for _ in 0..<100 where !seen {
            if let response = try? await first.lookup(["user_clicks:clicks"], users: ["u1"]) {
                seen = response.results[1].values[0].int64Val == 9
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(seen, "the first replica never saw user_clicks")
        await second.stop()
        await first.stop()
    }

    @Test func joinKeyColumnsEchoTheRequest() async throws {
        let store = try await FeatureStoreFixture()
        _ = try await store.apply(.with {
            $0.name = "store_stats"
            $0.entities = ["store_id", "region"]
            $0.features = [.with { $0.name = "visits"; $0.type = .int64 }]
        })
        _ = try await store.write("store_stats", [.with {
            $0.entityKey = ["store_id": int64(0), "region": string("")]
            $0.values = ["visits": int64(12)]
            $0.eventTime = Google_Protobuf_Timestamp(date: Date())
        }])
        let response = try await store.client.getOnlineFeatures(.with {
            $0.features = .with { $0.val = ["store_stats:visits"] }
            $0.entities = ["store_id": .with { $0.val = [int64(0), int64(7), int64(-3)] },
                           "region": .with { $0.val = [string(""), string("eu"), string("ü")] }]
        }, options: FeatureStoreFixture.options)
        #expect(response.metadata.featureNames.val == ["region", "store_id", "visits"])
        #expect(response.results[0].values == [string(""), string("eu"), string("ü")])
        #expect(response.results[1].values == [int64(0), int64(7), int64(-3)])
        #expect(response.results[2].statuses == [.present, .notFound, .notFound])
        #expect(response.results[2].values[0].int64Val == 12)
        await store.stop()
    }

    @Test(arguments: Backend.allCases)
    func theLatestEventTimeWinsWhateverTheOrder(backend: Backend) async throws {
        let store = try await FeatureStoreFixture(backend)
        _ = try await store.apply(FeatureStoreFixture.userStats())
        let now = Date()
        let newer = FeatureStoreFixture.row(user: "u1", time: now.addingTimeInterval(-10), ["purchases": int64(7), "spend": double(70)])
        let older = FeatureStoreFixture.row(user: "u1", time: now.addingTimeInterval(-100), ["purchases": int64(3), "spend": double(30)])
        let first = try await store.write("user_stats", [newer, older])
        #expect(first.written == 1 && first.ignoredStale == 1)
        // Replaying both, in the other order, converges to the same state.
        let replay = try await store.write("user_stats", [older, newer])
        #expect(replay.written == 1 && replay.ignoredStale == 1)
        let read = try await store.lookup(["user_stats:purchases", "user_stats:segment"], users: ["u1"])
        #expect(read.results[1].values[0].int64Val == 7)
        #expect(read.results[1].statuses[0] == .present)
        #expect(read.results[2].statuses[0] == .nullValue, "a row replaces the previous one whole; segment was never set")

        // Bad rows are rejected one by one; good rows in the same batch are stored.
        let mixed = try await store.write("user_stats", [
            FeatureStoreFixture.row(user: "u2", time: now, ["purchases": double(1.5)]),
            FeatureStoreFixture.row(user: "u3", time: now, ["colour": string("red")]),
            .with { $0.entityKey = ["user_id": int64(4)]; $0.values = ["spend": double(4)] },
            FeatureStoreFixture.row(user: "u5", time: now.addingTimeInterval(3600), [:]),
            .with { $0.entityKey = ["account": string("x")]; $0.eventTime = Google_Protobuf_Timestamp(date: now) },
            FeatureStoreFixture.row(user: "u6", time: now, ["spend": double(6)]),
        ])
        #expect(mixed.written == 1)
        #expect(mixed.errors.map(\.rowIndex) == [0, 1, 2, 3, 4, 4])
        #expect(mixed.errors[0].field == "values.purchases" && mixed.errors[0].reason.contains("VALUE_TYPE_INT64"))
        #expect(mixed.errors[1].field == "values.colour")
        #expect(mixed.errors[2].field == "event_time")
        #expect(mixed.errors[3].field == "event_time" && mixed.errors[3].reason.contains("future"))
        #expect(Set(mixed.errors[4...].map(\.field)) == ["entity_key.user_id", "entity_key.account"])

        // The same request id replays the first answer.
        let rows = [FeatureStoreFixture.row(user: "u7", time: now, ["spend": double(1)])]
        let once = try await store.write("user_stats", rows, requestID: "w-1")
        let twice = try await store.write("user_stats", rows, requestID: "w-1")
        #expect(once == twice && twice.written == 1)
        await expectStatus(.notFound, mentioning: "item_stats") { _ = try await store.write("item_stats", rows) }
        await store.stop()
    }

    @Test(arguments: Backend.allCases)
    func lookupsReportAStatusPerValueAndEnforceTheTTL(backend: Backend) async throws {
        let store = try await FeatureStoreFixture(backend)
        _ = try await store.apply(FeatureStoreFixture.userStats(ttl: 3600))
        let now = Date()
        _ = try await store.write("user_stats", [
            FeatureStoreFixture.row(user: "fresh", time: now.addingTimeInterval(-60), ["purchases": int64(2), "spend": double(20), "segment": string("gold")]),
            FeatureStoreFixture.row(user: "stale", time: now.addingTimeInterval(-3700), ["purchases": int64(9)]),
            FeatureStoreFixture.row(user: "edge", time: now.addingTimeInterval(-3590), ["purchases": int64(5)]),
        ])
        let response = try await store.lookup(["user_stats:purchases", "user_stats:segment"], users: ["fresh", "stale", "missing", "edge"])
        #expect(response.metadata.featureNames.val == ["user_id", "purchases", "segment"])
        let keys = response.results[0], purchases = response.results[1], segment = response.results[2]
        #expect(keys.values.map(\.stringVal) == ["fresh", "stale", "missing", "edge"])
        #expect(keys.statuses == [.present, .present, .present, .present])
        #expect(purchases.statuses == [.present, .outsideMaxAge, .notFound, .present])
        #expect(purchases.values[0].int64Val == 2 && purchases.values[3].int64Val == 5)
        #expect(purchases.values[1].val == nil, "a value past the TTL is withheld")
        #expect(purchases.eventTimestamps[1].seconds > 0 && purchases.eventTimestamps[2].seconds == 0)
        #expect(segment.statuses == [.present, .outsideMaxAge, .notFound, .nullValue])

        let full = try await store.lookup(["user_stats:spend"], users: ["fresh"], fullNames: true)
        #expect(full.metadata.featureNames.val == ["user_id", "user_stats__spend"])

        // 1000 rows in one call.
        let many = try await store.lookup(["user_stats:purchases"], users: (0..<1000).map { $0 == 500 ? "fresh" : "user-\($0)" })
        #expect(many.results[1].statuses.count == 1000)
        #expect(many.results[1].statuses.filter { $0 == .present }.count == 1)

        await expectStatus(.notFound, mentioning: "user_stats has no feature colour") { _ = try await store.lookup(["user_stats:colour"], users: ["fresh"]) }
        await expectStatus(.notFound, mentioning: "item_stats") { _ = try await store.lookup(["item_stats:price"], users: ["fresh"]) }
        await expectStatus(.invalidArgument, mentioning: "view:feature") { _ = try await store.lookup(["user_stats.purchases"], users: ["fresh"]) }
        await expectStatus(.invalidArgument, mentioning: "1000") { _ = try await store.lookup(["user_stats:purchases"], users: (0..<1001).map { "u\($0)" }) }
        await expectStatus(.invalidArgument, mentioning: "user_id") {
            _ = try await store.client.getOnlineFeatures(.with {
                $0.features = .with { $0.val = ["user_stats:purchases"] }
                $0.entities = ["item_id": .with { $0.val = [string("i1")] }]
            }, options: FeatureStoreFixture.options)
        }
        await store.stop()
    }

    @Test(arguments: Backend.allCases)
    func featureServicesAndTwoViewsWithOneName(backend: Backend) async throws {
        let store = try await FeatureStoreFixture(backend)
        _ = try await store.apply(FeatureStoreFixture.userStats())
        var other = FeatureStoreFixture.userStats()
        other.name = "user_recent"
        _ = try await store.apply(other)
        _ = try await store.client.applyFeatureService(.with {
            $0.featureService = .with {
                $0.name = "ranker"
                $0.projections = [.with { $0.featureViewName = "user_recent"; $0.featureNames = ["spend"] },
                                  .with { $0.featureViewName = "user_stats" }]
            }
        }, options: FeatureStoreFixture.options)
        await expectStatus(.invalidArgument, mentioning: "full_feature_names") {
            _ = try await store.client.getOnlineFeatures(.with {
                $0.featureService = "ranker"
                $0.entities = ["user_id": .with { $0.val = [string("u1")] }]
            }, options: FeatureStoreFixture.options)
        }
        let response = try await store.client.getOnlineFeatures(.with {
            $0.featureService = "ranker"
            $0.entities = ["user_id": .with { $0.val = [string("u1")] }]
            $0.fullFeatureNames = true
        }, options: FeatureStoreFixture.options)
        #expect(response.metadata.featureNames.val == ["user_id", "user_recent__spend", "user_stats__purchases", "user_stats__spend", "user_stats__segment"])
        await store.stop()
    }

    @Test(arguments: Backend.allCases)
    func acknowledgedWritesSurviveARestartAndDeletedViewsTakeTheirRows(backend: Backend) async throws {
        let store = try await FeatureStoreFixture(backend)
        _ = try await store.apply(FeatureStoreFixture.userStats())
        let rows = (0..<500).map { FeatureStoreFixture.row(user: "u\($0)", time: Date(), ["purchases": int64(Int64($0))]) }
        let written = try await store.write("user_stats", rows)
        #expect(written.written == 500)
        await store.stop()

        let restarted = try await FeatureStoreFixture(backend, dataDirectory: store.dataDirectory, databaseURL: store.databaseURL)
        let read = try await restarted.lookup(["user_stats:purchases"], users: ["u0", "u499"])
        #expect(read.results[1].values.map(\.int64Val) == [0, 499])
        _ = try await restarted.client.deleteFeatureView(.with { $0.name = "user_stats" }, options: FeatureStoreFixture.options)
        _ = try await restarted.apply(FeatureStoreFixture.userStats())
        let empty = try await restarted.lookup(["user_stats:purchases"], users: ["u0"])
        #expect(empty.results[1].statuses == [.notFound])
        await restarted.stop()
    }
}
