import Contracts
import ExperimentationServer
import Foundation
import MeridianRPC
import NIOCore
import ServiceKit
import StandardServices
import SwiftProtobuf
import Testing

/// The experimentation service over real RPC on loopback, started from its
/// `buildService`.
final class ExperimentationFixture: Sendable {
    let host: ServiceHost
    let channel: RPCChannel
    let client: Platform_Experimentation_V1_ExperimentationServiceClient
    let dataDirectory: String

    let databaseURL: String?

    init(_ backend: Backend = .sqlite, dataDirectory: String? = nil, databaseURL: String? = nil,
         ingestion: IngestionPipeline.Configuration = .defaults, assignmentRefresh: Duration = .seconds(5),
         demoData: Bool = false) async throws {
        var configuration = ServiceConfiguration.forTesting(name: "experimentation")
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if backend == .postgres {
            configuration.databaseURL = if let databaseURL { databaseURL } else { try await TestPostgres.createDatabase() }
        }
        configuration.seedDemoData = demoData
        self.dataDirectory = configuration.dataDirectory!
        self.databaseURL = configuration.databaseURL
        host = try await ExperimentationServer.buildService(configuration: configuration, ingestion: ingestion, assignmentRefresh: assignmentRefresh)
        let port = try await host.start()
        channel = try RPCChannel(host: "127.0.0.1", port: port)
        client = Platform_Experimentation_V1_ExperimentationServiceClient(channel: channel)
    }

    func stop() async {
        await channel.close()
        await host.shutdown()
    }

    static func options(tenant: String = "acme", idempotencyKey: String? = nil, user: String? = nil) -> CallOptions {
        var options = CallOptions(timeout: .seconds(10))
        options.metadata.add("x-tenant-id", tenant)
        if let idempotencyKey { options.metadata.add("idempotency-key", idempotencyKey) }
        if let user { options.metadata.add("x-user-id", user) }
        return options
    }

    static func experiment(_ key: String, status: Experiment.Status = .running, weights: [Double] = [0.5, 0.5]) -> Experiment {
        .with {
            $0.key = key
            $0.name = "Checkout button colour"
            $0.variations = weights.enumerated().map { index, weight in
                .with { $0.key = index == 0 ? "control" : "treatment\(index)"; $0.weight = weight }
            }
            $0.status = status
        }
    }

    func create(_ experiment: Experiment, tenant: String = "acme") async throws -> Experiment {
        try await client.createExperiment(.with { $0.experiment = experiment }, options: Self.options(tenant: tenant))
    }

    func assign(_ attributes: [String: Google_Protobuf_Value], keys: [String] = [], log: Bool = false, tenant: String = "acme") async throws -> Platform_Experimentation_V1_GetAssignmentsResponse {
        try await client.getAssignments(.with {
            $0.attributes = Google_Protobuf_Struct(fields: attributes)
            $0.experimentKeys = keys
            $0.logExposures = log
        }, options: Self.options(tenant: tenant))
    }
}

func expectStatus(_ code: RPCStatus.Code, mentioning text: String? = nil, _ body: () async throws -> Void,
                  sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if let text { #expect(error.message.contains(text), "\(error.message) should mention \(text)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct ExperimentationTests {
    @Test(arguments: Backend.allCases)
    func createGetListAndValidation(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend)
        let created = try await fixture.create(ExperimentationFixture.experiment("checkout-colour", status: .unspecified))
        #expect(created.status == .draft)
        #expect(created.hashVersion == 2)
        #expect(!created.etag.isEmpty && created.hasCreateTime)
        let read = try await fixture.client.getExperiment(.with { $0.key = "checkout-colour" }, options: ExperimentationFixture.options())
        #expect(read == created)

        await expectStatus(.alreadyExists, mentioning: "checkout-colour") { _ = try await fixture.create(ExperimentationFixture.experiment("checkout-colour")) }
        await expectStatus(.notFound, mentioning: "nope") {
            _ = try await fixture.client.getExperiment(.with { $0.key = "nope" }, options: ExperimentationFixture.options())
        }
        // Another tenant sees nothing.
        await expectStatus(.notFound) {
            _ = try await fixture.client.getExperiment(.with { $0.key = "checkout-colour" }, options: ExperimentationFixture.options(tenant: "other"))
        }
        await expectStatus(.unauthenticated) {
            _ = try await fixture.client.getExperiment(.with { $0.key = "checkout-colour" }, options: CallOptions(timeout: .seconds(5)))
        }
        do {
            var bad = ExperimentationFixture.experiment("bad key!", weights: [0.7, 0.7])
            bad.coverage = 1.5
            bad.condition = Google_Protobuf_Struct(fields: ["country": Google_Protobuf_Value(structValue: .init(fields: ["$inn": .init(listValue: .init(values: []))]))])
            _ = try await fixture.create(bad)
            Issue.record("invalid experiment accepted")
        } catch let error as RPCError {
            let fields = Set(error.status.fieldViolations.map(\.field))
            #expect(error.code == .invalidArgument)
            #expect(fields.isSuperset(of: ["experiment.key", "experiment.variations", "experiment.coverage", "experiment.condition"]), "\(fields)")
            #expect(error.message.contains("$inn"))
        }

        for key in ["exp-a", "exp-b", "exp-c"] { _ = try await fixture.create(ExperimentationFixture.experiment(key)) }
        var keys: [String] = []
        var token = ""
        repeat {
            let page = try await fixture.client.listExperiments(.with { $0.pageSize = 2; $0.pageToken = token }, options: ExperimentationFixture.options())
            keys += page.experiments.map(\.key)
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(keys == ["checkout-colour", "exp-a", "exp-b", "exp-c"])
        let running = try await fixture.client.listExperiments(.with { $0.status = .running }, options: ExperimentationFixture.options())
        #expect(running.experiments.map(\.key) == ["exp-a", "exp-b", "exp-c"])
        await expectStatus(.invalidArgument, mentioning: "page_size") {
            _ = try await fixture.client.listExperiments(.with { $0.pageSize = -1 }, options: ExperimentationFixture.options())
        }
        await fixture.stop()
    }

    @Test(arguments: Backend.allCases)
    func updatesFollowTheLifeCycleAndAreAudited(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend)
        let draft = try await fixture.create(ExperimentationFixture.experiment("ranker", status: .draft))
        let options = ExperimentationFixture.options(user: "alice@example.com")

        // Before it runs, anything may change.
        var change = draft
        change.variations[0].weight = 0.2
        change.variations[1].weight = 0.8
        let reweighted = try await fixture.client.updateExperiment(.with { $0.experiment = change; $0.updateMask.paths = ["variations"] }, options: options)
        #expect(reweighted.variations.map(\.weight) == [0.2, 0.8])
        #expect(reweighted.etag != draft.etag)

        // A stale etag is refused.
        await expectStatus(.aborted, mentioning: "etag") {
            var stale = draft
            stale.name = "new name"
            _ = try await fixture.client.updateExperiment(.with { $0.experiment = stale; $0.updateMask.paths = ["name"] }, options: options)
        }
        // Output-only and unknown mask paths are refused.
        await expectStatus(.invalidArgument, mentioning: "etag cannot be changed") {
            _ = try await fixture.client.updateExperiment(.with { $0.experiment.key = "ranker"; $0.updateMask.paths = ["etag"] }, options: options)
        }

        let started = try await fixture.client.updateExperiment(.with {
            $0.experiment.key = "ranker"
            $0.experiment.status = .running
            $0.updateMask.paths = ["status"]
        }, options: options)
        #expect(started.status == .running)

        // While running, changes that move assigned units are refused; raising coverage is fine.
        await expectStatus(.failedPrecondition, mentioning: "variations") {
            var moving = started
            moving.variations[0].weight = 0.5
            moving.variations[1].weight = 0.5
            _ = try await fixture.client.updateExperiment(.with { $0.experiment = moving; $0.updateMask.paths = ["variations"] }, options: options)
        }
        await expectStatus(.failedPrecondition, mentioning: "DRAFT") {
            _ = try await fixture.client.updateExperiment(.with {
                $0.experiment.key = "ranker"
                $0.experiment.status = .draft
                $0.updateMask.paths = ["status"]
            }, options: options)
        }
        let stopped = try await fixture.client.updateExperiment(.with {
            $0.experiment.key = "ranker"
            $0.experiment.status = .stopped
            $0.experiment.forcedVariationKey = "treatment1"
            $0.updateMask.paths = ["status", "forced_variation_key"]
        }, options: options)
        #expect(stopped.status == .stopped)

        // A stopped experiment with a winner serves it to everyone targeted.
        let forced = try await fixture.assign(["id": .init(stringValue: "u1")], keys: ["ranker"])
        #expect(forced.assignments[0].reason == .forced)
        #expect(forced.assignments[0].variationKey == "treatment1")
        #expect(!forced.assignments[0].inExperiment)

        let log = try await fixture.client.listExperimentChanges(.with { $0.key = "ranker" }, options: options)
        #expect(log.changes.count == 4)
        #expect(log.changes[0].changedFields == ["status", "forced_variation_key"])
        #expect(log.changes[0].actor == "alice@example.com")
        #expect(log.changes[0].before.fields["status"]?.stringValue == "STATUS_RUNNING")
        #expect(log.changes[0].after.fields["status"]?.stringValue == "STATUS_STOPPED")
        #expect(log.changes[3].changedFields.isEmpty, "the creation comes last")
        #expect(log.changes[3].after.fields["key"]?.stringValue == "ranker")
        let firstPage = try await fixture.client.listExperimentChanges(.with { $0.key = "ranker"; $0.pageSize = 3 }, options: options)
        let secondPage = try await fixture.client.listExperimentChanges(.with {
            $0.key = "ranker"; $0.pageSize = 3; $0.pageToken = firstPage.nextPageToken
        }, options: options)
        #expect(firstPage.changes.count == 3 && secondPage.changes.count == 1 && secondPage.nextPageToken.isEmpty)
        await fixture.stop()
    }

    @Test(arguments: Backend.allCases)
    func idempotentCreateReplaysTheFirstAnswer(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend)
        let request = Platform_Experimentation_V1_CreateExperimentRequest.with {
            $0.experiment = ExperimentationFixture.experiment("retry-me")
            $0.requestID = "req-1"
        }
        let first = try await fixture.client.createExperiment(request, options: ExperimentationFixture.options())
        let replay = try await fixture.client.createExperiment(request, options: ExperimentationFixture.options())
        #expect(replay == first)
        await expectStatus(.invalidArgument, mentioning: "req-1") {
            var other = request
            other.experiment.key = "something-else"
            _ = try await fixture.client.createExperiment(other, options: ExperimentationFixture.options())
        }
        await fixture.stop()
    }

    @Test(arguments: Backend.allCases)
    func assignmentsGiveReasonsAndAreDeterministic(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend)
        _ = try await fixture.create(ExperimentationFixture.experiment("a-running"))
        _ = try await fixture.create(ExperimentationFixture.experiment("b-draft", status: .draft))
        var targeted = ExperimentationFixture.experiment("c-germany")
        targeted.condition = Google_Protobuf_Struct(fields: ["country": .init(structValue: .init(fields: ["$in": .init(listValue: .init(values: [.init(stringValue: "DE")]))]))])
        _ = try await fixture.create(targeted)
        var covered = ExperimentationFixture.experiment("d-nobody")
        covered.coverage = 0
        _ = try await fixture.create(covered)

        let unit: [String: Google_Protobuf_Value] = ["id": .init(stringValue: "user-42"), "country": .init(stringValue: "FR")]
        let all = try await fixture.assign(unit)
        #expect(all.assignments.map(\.experimentKey) == ["a-running", "c-germany", "d-nobody"], "only running experiments, by key")
        #expect(all.assignments.map(\.reason) == [.assigned, .notTargeted, .notInCoverage])
        #expect(all.assignments[0].hashValue_p == "user-42" && all.assignments[0].hashAttribute == "id")
        #expect(all.assignments[1].variationKey == "control" && !all.assignments[1].inExperiment)

        // The same unit always lands in the same variation, and it is GrowthBook's.
        let expectedBucket = try #require(GrowthBookHashing.hash(seed: "a-running", value: "user-42", version: 2))
        for _ in 0..<3 {
            let again = try await fixture.assign(unit, keys: ["a-running"])
            #expect(again.assignments[0].bucket == expectedBucket)
            #expect(again.assignments[0].variationIndex == (expectedBucket < 0.5 ? 0 : 1))
        }
        let named = try await fixture.assign(["country": .init(stringValue: "DE")], keys: ["b-draft", "c-germany"])
        #expect(named.assignments.map(\.reason) == [.notRunning, .noHashAttribute])

        // Numbers are hashed as JavaScript prints them.
        let numeric = try await fixture.assign(["id": .init(numberValue: 123)], keys: ["a-running"])
        #expect(numeric.assignments[0].hashValue_p == "123")

        // An experiment hashing another attribute, through its fallback: in
        // one call with the others, each assignment names what it hashed.
        var fallback = ExperimentationFixture.experiment("e-device")
        fallback.hashAttribute = "user_id"
        fallback.fallbackAttribute = "device_id"
        _ = try await fixture.create(fallback)
        let mixed = try await fixture.assign(["id": .init(stringValue: "user-42"), "device_id": .init(stringValue: "dev-7")],
                                             keys: ["a-running", "e-device", "a-running"])
        #expect(mixed.assignments.map(\.hashAttribute) == ["id", "device_id", "id"])
        #expect(mixed.assignments.map(\.hashValue_p) == ["user-42", "dev-7", "user-42"])
        #expect(mixed.assignments[1].bucket == GrowthBookHashing.hash(seed: "e-device", value: "dev-7", version: 2))
        #expect(mixed.assignments[2].bucket == expectedBucket)

        // A tenant without experiments gets an empty answer, not an error.
        let none = try await fixture.assign(unit, tenant: "nobody")
        #expect(none.assignments.isEmpty)

        await expectStatus(.notFound, mentioning: "missing-one") { _ = try await fixture.assign(unit, keys: ["a-running", "missing-one"]) }
        await expectStatus(.invalidArgument, mentioning: "experiment_keys") {
            _ = try await fixture.assign(unit, keys: (0..<101).map { "k\($0)" })
        }

        // Split roughly follows the weights over many units.
        var treatment = 0
        for index in 0..<400 {
            let response = try await fixture.assign(["id": .init(stringValue: "unit-\(index)")], keys: ["a-running"])
            treatment += Int(response.assignments[0].variationIndex)
        }
        #expect((140...260).contains(treatment), "\(treatment) of 400 in treatment")
        await fixture.stop()
    }

    /// Experiments with equal conditions share one evaluation per call;
    /// each experiment still gets its own condition's answer.
    @Test func experimentsSharingAConditionAreTargetedAlike() async throws {
        let fixture = try await ExperimentationFixture()
        for (key, condition) in [("de-1", #"{"country": "DE"}"#), ("de-2", #"{"country": "DE"}"#), ("fr", #"{"country": "FR"}"#), ("pro", #"{"plan": "pro"}"#)] {
            var experiment = ExperimentationFixture.experiment(key)
            experiment.condition = try Google_Protobuf_Struct(jsonString: condition)
            _ = try await fixture.create(experiment)
        }
        let french = try await fixture.assign(["id": .init(stringValue: "u1"), "country": .init(stringValue: "FR"), "plan": .init(stringValue: "pro")])
        #expect(french.assignments.map(\.experimentKey) == ["de-1", "de-2", "fr", "pro"])
        #expect(french.assignments.map(\.reason) == [.notTargeted, .notTargeted, .assigned, .assigned])
        let german = try await fixture.assign(["id": .init(stringValue: "u1"), "country": .init(stringValue: "DE")])
        #expect(german.assignments.map(\.reason) == [.assigned, .assigned, .notTargeted, .notTargeted])
        let named = try await fixture.assign(["id": .init(stringValue: "u1"), "country": .init(stringValue: "DE")], keys: ["fr", "de-2"])
        #expect(named.assignments.map(\.reason) == [.notTargeted, .assigned])
        await fixture.stop()
    }

    /// GetAssignments reads its request with its own decoder; every kind of
    /// attribute value reaches targeting, and unusual encodings (split
    /// messages, repeated keys, a value setting two kinds, unknown fields)
    /// give exactly what SwiftProtobuf's reading gives.
    @Test func attributesOfEveryKindAssignTheSameHoweverEncoded() async throws {
        let fixture = try await ExperimentationFixture()
        let conditions = [
            "nested": #"{"profile.plan": "pro"}"#,
            "listed": #"{"tags": {"$elemMatch": {"$eq": "vip"}}}"#,
            "numeric": #"{"age": {"$gt": 30}}"#,
            "flagged": #"{"beta": true}"#,
            "nulled": #"{"referrer": {"$type": "null"}}"#,
        ]
        for (key, condition) in conditions {
            var experiment = ExperimentationFixture.experiment(key)
            experiment.condition = try Google_Protobuf_Struct(jsonString: condition)
            _ = try await fixture.create(experiment)
        }
        let fields: [String: Google_Protobuf_Value] = [
            "id": .init(stringValue: "user-9"),
            "profile": .init(structValue: .init(fields: ["plan": .init(stringValue: "pro")])),
            "tags": .init(listValue: .init(values: [.init(stringValue: "new"), .init(stringValue: "vip")])),
            "age": .init(numberValue: 31),
            "beta": .init(boolValue: true),
            "referrer": Google_Protobuf_Value(nilLiteral: ()),
        ]
        let expected = try await fixture.assign(fields)
        #expect(expected.assignments.map(\.experimentKey) == ["flagged", "listed", "nested", "nulled", "numeric"])
        #expect(expected.assignments.allSatisfy { $0.reason == .assigned || $0.reason == .notInCoverage }, "\(expected.assignments.map(\.reason))")
        let other = try await fixture.assign(["id": .init(stringValue: "user-9"), "age": .init(numberValue: 30), "tags": .init(listValue: .init()),
                                              "referrer": .init(stringValue: "ad")])
        #expect(other.assignments.allSatisfy { $0.reason == .notTargeted }, "\(other.assignments.map(\.reason))")

        func entry(_ key: String, _ value: [UInt8]) -> [UInt8] { field(1, field(1, Array(key.utf8)) + field(2, value)) }
        func encoded(_ value: Google_Protobuf_Value) throws -> [UInt8] { try value.serializedBytes() }
        var canonical: [UInt8] = []
        for key in fields.keys.sorted() { canonical += try entry(key, encoded(fields[key]!)) }
        let variants: [String: [UInt8]] = [
            "canonical": field(1, canonical),
            "split in two messages": field(1, Array(canonical.prefix(try entry("age", encoded(fields["age"]!)).count)))
                + field(1, Array(canonical.dropFirst(try entry("age", encoded(fields["age"]!)).count))),
            "a key given twice, the last wins": field(1, try entry("age", encoded(.init(numberValue: 5))) + canonical),
            "a value with two kinds, the last wins": field(1, canonical + entry("beta", try encoded(.init(stringValue: "no")) + encoded(.init(boolValue: true)))),
            "unknown fields": field(1, canonical) + [15 << 3, 1],
        ]
        let path = Platform_Experimentation_V1_ExperimentationService.Method.getAssignments
        for (name, bytes) in variants {
            let answer = try await fixture.channel.unary(path: path, payload: ByteBuffer(bytes: bytes), options: ExperimentationFixture.options())
            let response = try Platform_Experimentation_V1_GetAssignmentsResponse(serializedBytes: Array(buffer: answer.message))
            #expect(response == expected, "\(name)")
        }
        await expectStatus(.internal, mentioning: "GetAssignmentsRequest") {
            _ = try await fixture.channel.unary(path: path, payload: ByteBuffer(bytes: field(1, canonical).dropLast(3)), options: ExperimentationFixture.options())
        }
        await expectStatus(.internal, mentioning: "GetAssignmentsRequest") {
            let badUTF8 = field(1, entry("id", field(3, [0x75, 0xFF, 0xFE])))
            _ = try await fixture.channel.unary(path: path, payload: ByteBuffer(bytes: badUTF8), options: ExperimentationFixture.options())
        }
        await fixture.stop()
    }

    /// Two replicas on one database: what one writes, the other assigns by
    /// within its refresh interval, and its own writes show at once.
    @Test(arguments: Backend.allCases)
    func aReplicaPicksUpAnotherReplicasChanges(backend: Backend) async throws {
        let first = try await ExperimentationFixture(backend, assignmentRefresh: .milliseconds(200))
        let second = try await ExperimentationFixture(backend, dataDirectory: first.dataDirectory, databaseURL: first.databaseURL,
                                                      assignmentRefresh: .milliseconds(200))
        let unit: [String: Google_Protobuf_Value] = ["id": .init(stringValue: "user-7")]
        _ = try await first.create(ExperimentationFixture.experiment("own-write"))
        #expect(try await first.assign(unit).assignments.map(\.experimentKey) == ["own-write"], "a replica's own write shows at once")

        _ = try await second.create(ExperimentationFixture.experiment("other-write"))
        func firstSees(_ keys: [String], reasons: [Assignment.Reason]) async throws -> Bool {
            for _ in 0..<100 {
                let assignments = try await first.assign(unit).assignments
                if assignments.map(\.experimentKey) == keys && assignments.map(\.reason) == reasons { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
        #expect(try await firstSees(["other-write", "own-write"], reasons: [.assigned, .assigned]))

        // An update by the other replica (stopping it) reaches the first too.
        let options = ExperimentationFixture.options()
        let current = try await second.client.getExperiment(.with { $0.key = "other-write" }, options: options)
        var stopped = current
        stopped.status = .stopped
        _ = try await second.client.updateExperiment(.with { $0.experiment = stopped; $0.updateMask.paths = ["status"] }, options: options)
        #expect(try await firstSees(["own-write"], reasons: [.assigned]), "a stopped experiment without a winner is no longer served")
        await second.stop()
        await first.stop()
    }

    @Test(arguments: Backend.allCases)
    func exposuresAndEventsAreDeduplicatedAndIdempotent(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend)
        _ = try await fixture.create(ExperimentationFixture.experiment("exp"))
        let exposures = (0..<10).map { index in
            Platform_Experimentation_V1_Exposure.with {
                $0.experimentKey = "exp"
                $0.variationKey = index % 2 == 0 ? "control" : "treatment1"
                $0.unitID = "u\(index % 5)"  // each unit twice, once per variation pair
            }
        }
        let first = try await fixture.client.logExposures(.with { $0.exposures = exposures; $0.requestID = "batch-1" }, options: ExperimentationFixture.options())
        #expect(first.accepted + first.duplicates == 10)
        // Replaying the same request id answers the same, without storing again.
        let replay = try await fixture.client.logExposures(.with { $0.exposures = exposures; $0.requestID = "batch-1" }, options: ExperimentationFixture.options())
        #expect(replay == first)
        // The same exposures again under a new id are all duplicates.
        let again = try await fixture.client.logExposures(.with { $0.exposures = exposures }, options: ExperimentationFixture.options())
        #expect(again.accepted == 0 && again.duplicates == 10)

        do {
            _ = try await fixture.client.logExposures(.with {
                $0.exposures = [
                    .with { $0.experimentKey = "exp"; $0.variationKey = "blue"; $0.unitID = "u1" },
                    .with { $0.experimentKey = "nope"; $0.variationKey = "control"; $0.unitID = "u1" },
                    .with { $0.experimentKey = "exp"; $0.variationKey = "control" },
                    .with { $0.experimentKey = "exp"; $0.variationKey = "control"; $0.unitID = "u1"; $0.time = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(3600)) },
                ]
            }, options: ExperimentationFixture.options())
            Issue.record("invalid exposures accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(Set(error.status.fieldViolations.map(\.field)) == [
                "exposures[0].variation_key", "exposures[1].experiment_key", "exposures[2].unit_id", "exposures[3].time"])
        }
        await expectStatus(.invalidArgument, mentioning: "exposures") {
            _ = try await fixture.client.logExposures(.init(), options: ExperimentationFixture.options())
        }

        let events = [
            Platform_Experimentation_V1_Event.with { $0.eventKey = "purchase"; $0.unitID = "u1"; $0.value = 10; $0.eventID = "order-1" },
            Platform_Experimentation_V1_Event.with { $0.eventKey = "purchase"; $0.unitID = "u1"; $0.value = 10; $0.eventID = "order-1" },
            Platform_Experimentation_V1_Event.with { $0.eventKey = "purchase"; $0.unitID = "u2"; $0.value = 5 },
        ]
        let tracked = try await fixture.client.trackEvents(.with { $0.events = events }, options: ExperimentationFixture.options())
        #expect(tracked.accepted == 2 && tracked.duplicates == 1)
        await expectStatus(.invalidArgument, mentioning: "value") {
            _ = try await fixture.client.trackEvents(.with {
                $0.events = [.with { $0.eventKey = "purchase"; $0.unitID = "u1"; $0.value = .nan }]
            }, options: ExperimentationFixture.options())
        }
        await fixture.stop()
    }

    @Test(arguments: Backend.allCases)
    func aBurstBeyondTheQueueIsRefusedAndNothingAcknowledgedIsLost(backend: Backend) async throws {
        var ingestion = IngestionPipeline.Configuration.defaults
        ingestion.capacity = 2_000
        ingestion.maxRecordsPerTransaction = 500
        let fixture = try await ExperimentationFixture(backend, ingestion: ingestion)
        _ = try await fixture.create(ExperimentationFixture.experiment("burst"))
        // 40 concurrent batches of 500 exposures: 20,000 records against room for 2,000.
        let batches = (0..<40).map { batch in
            (0..<500).map { index in
                Platform_Experimentation_V1_Exposure.with {
                    $0.experimentKey = "burst"
                    $0.variationKey = "control"
                    $0.unitID = "b\(batch)-u\(index)"
                }
            }
        }
        let outcomes = await withTaskGroup(of: (Int, Int32?, RPCError?).self) { group in
            for (batch, exposures) in batches.enumerated() {
                group.addTask {
                    do {
                        let response = try await fixture.client.logExposures(.with { $0.exposures = exposures }, options: ExperimentationFixture.options())
                        return (batch, response.accepted, nil)
                    } catch let error as RPCError {
                        return (batch, nil, error)
                    } catch {
                        return (batch, nil, RPCError(.unknown, "\(error)"))
                    }
                }
            }
            var all: [(Int, Int32?, RPCError?)] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let acknowledged = outcomes.filter { $0.1 != nil }.map(\.0)
        let refused = outcomes.compactMap(\.2)
        #expect(!refused.isEmpty, "a burst ten times the queue must be pushed back")
        #expect(refused.allSatisfy { $0.code == .unavailable }, "\(refused.map(\.code))")
        #expect(refused.allSatisfy { error in
            error.status.richStatus?.details.contains { $0.typeURL.hasSuffix("google.rpc.RetryInfo") } == true
        })
        #expect(outcomes.compactMap(\.1).allSatisfy { $0 == 500 })
        #expect(!acknowledged.isEmpty)

        // After a restart, every acknowledged exposure is stored (sending it
        // again finds a duplicate) and every refused one is not.
        await fixture.stop()
        let restarted = try await ExperimentationFixture(backend, dataDirectory: fixture.dataDirectory, databaseURL: fixture.databaseURL)
        for batch in 0..<batches.count {
            let again = try await restarted.client.logExposures(.with { $0.exposures = batches[batch] }, options: ExperimentationFixture.options())
            if acknowledged.contains(batch) {
                #expect(again.duplicates == 500, "batch \(batch) was acknowledged but lost")
            } else {
                #expect(again.accepted == 500, "batch \(batch) was refused but partly stored")
            }
        }
        await restarted.stop()
    }

    @Test(arguments: Backend.allCases)
    func demoDataHasTheRankerExperiment(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend, demoData: true)
        let response = try await fixture.assign(["id": .init(stringValue: "user-1")], keys: ["ranker-v2"], tenant: DemoExperiments.tenant)
        #expect(response.assignments[0].reason == .assigned)
        #expect(response.assignments[0].value.structValue.fields["ranker_version"] != nil)
        await fixture.stop()
    }
}

@Suite struct StickyAssignmentTests {
    @Test(arguments: Backend.allCases)
    func assignedUnitsKeepTheirVariationWhenWeightsChange(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend)
        var experiment = ExperimentationFixture.experiment("ramp", weights: [0.9, 0.1])
        experiment.stickyAssignment = true
        _ = try await fixture.create(experiment)
        let units = (0..<200).map { "unit-\($0)" }
        var before: [String: String] = [:]
        for unit in units {
            let response = try await fixture.assign(["id": .init(stringValue: unit)], keys: ["ramp"])
            #expect(response.assignments[0].reason == .assigned)
            before[unit] = response.assignments[0].variationKey
        }
        // Sticky assignments are stored in the background: wait until all are.
        var stored = false
        for _ in 0..<50 where !stored {
            try await Task.sleep(for: .milliseconds(100))
            let response = try await fixture.assign(["id": .init(stringValue: units.last!)], keys: ["ramp"])
            stored = response.assignments[0].sticky
        }
        try #require(stored)

        // Ramp the treatment up while running: allowed because it is sticky.
        let current = try await fixture.client.getExperiment(.with { $0.key = "ramp" }, options: ExperimentationFixture.options())
        var ramped = current
        ramped.variations[0].weight = 0.1
        ramped.variations[1].weight = 0.9
        _ = try await fixture.client.updateExperiment(.with { $0.experiment = ramped; $0.updateMask.paths = ["variations"] },
                                                      options: ExperimentationFixture.options())
        for unit in units {
            let response = try await fixture.assign(["id": .init(stringValue: unit)], keys: ["ramp"])
            #expect(response.assignments[0].variationKey == before[unit], "\(unit) moved")
            #expect(response.assignments[0].sticky)
        }
        // New units follow the new split: most now get the treatment.
        var treated = 0
        for index in 0..<200 {
            let response = try await fixture.assign(["id": .init(stringValue: "new-\(index)")], keys: ["ramp"])
            #expect(!response.assignments[0].sticky)
            if response.assignments[0].variationKey == "treatment1" { treated += 1 }
        }
        #expect(treated > 150, "\(treated) of 200 new units in treatment")

        // Immutable once created.
        await expectStatus(.invalidArgument, mentioning: "sticky_assignment") {
            _ = try await fixture.client.updateExperiment(.with {
                $0.experiment.key = "ramp"; $0.updateMask.paths = ["sticky_assignment"]
            }, options: ExperimentationFixture.options())
        }
        await fixture.stop()
    }
}

@Suite struct ExperimentResultsTests {
    @Test func assignmentsLogTheirExposuresOnce() async throws {
        let fixture = try await ExperimentationFixture(.sqlite)
        _ = try await fixture.create(ExperimentationFixture.experiment("checkout"))
        var shown: [String: Int] = [:]
        for index in 0..<30 {
            let response = try await fixture.assign(["id": .init(stringValue: "unit-\(index)")], keys: ["checkout"], log: true)
            #expect(response.exposuresLogged)
            let assignment = try #require(response.assignments.first)
            #expect(assignment.inExperiment && assignment.hashValue_p == "unit-\(index)")
            shown[assignment.variationKey, default: 0] += 1
        }
        // Seeing the same variation again is the same exposure, not a new one.
        _ = try await fixture.assign(["id": .init(stringValue: "unit-0")], keys: ["checkout"], log: true)

        func results() async throws -> Platform_Experimentation_V1_GetResultsResponse {
            try await fixture.client.getResults(.with { $0.experimentKey = "checkout"; $0.metricKey = "revenue" },
                                                options: ExperimentationFixture.options())
        }
        // Exposures are written in the background.
        var logged = try await results()
        let deadline = ContinuousClock.now + .seconds(30)
        while logged.totalExposures < 30, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            logged = try await results()
        }
        #expect(logged.totalExposures == 30)
        #expect(Dictionary(uniqueKeysWithValues: logged.variations.map { ($0.variationKey, Int($0.units)) }) == shown)
    }

    @Test(arguments: Backend.allCases)
    func resultsJoinEventsToExposures(backend: Backend) async throws {
        let fixture = try await ExperimentationFixture(backend)
        _ = try await fixture.create(ExperimentationFixture.experiment("checkout"))
        _ = try await fixture.create(ExperimentationFixture.experiment("later", status: .draft))
        let start = Date().addingTimeInterval(-3600)
        var exposures: [Platform_Experimentation_V1_Exposure] = []
        var events: [Platform_Experimentation_V1_Event] = []
        func at(_ minutes: Double) -> Google_Protobuf_Timestamp { Google_Protobuf_Timestamp(date: start.addingTimeInterval(minutes * 60)) }
        for index in 0..<40 {
            let variation = index % 2 == 0 ? "control" : "treatment1"
            let unit = "u\(index)"
            exposures.append(.with { $0.experimentKey = "checkout"; $0.variationKey = variation; $0.unitID = unit; $0.time = at(10) })
            // Control units spend 10 + index % 5, treatment units 12 + index % 5, after exposure.
            let spend = Double(variation == "control" ? 10 : 12) + Double(index % 5)
            events.append(.with { $0.eventKey = "revenue"; $0.unitID = unit; $0.value = spend; $0.time = at(20) })
            // Spending before the exposure is not the experiment's doing: only the covariate.
            events.append(.with { $0.eventKey = "revenue"; $0.unitID = unit; $0.value = Double(index % 5) * 2; $0.time = at(5) })
        }
        // A unit that saw both variations counts in neither.
        exposures.append(.with { $0.experimentKey = "checkout"; $0.variationKey = "treatment1"; $0.unitID = "u0"; $0.time = at(11) })
        _ = try await fixture.client.logExposures(.with { $0.exposures = exposures }, options: ExperimentationFixture.options())
        _ = try await fixture.client.trackEvents(.with { $0.events = events }, options: ExperimentationFixture.options())

        let results = try await fixture.client.getResults(.with { $0.experimentKey = "checkout"; $0.metricKey = "revenue" },
                                                          options: ExperimentationFixture.options())
        #expect(results.variations.map(\.variationKey) == ["control", "treatment1"])
        #expect(results.variations.map(\.units) == [19, 20])
        #expect(results.totalExposures == 41)
        let control = results.variations[0], treatment = results.variations[1]
        // Control without u0 (spend 10): 19 units; treatment: 20 units.
        let controlSpends = (1..<20).map { 10.0 + Double((2 * $0) % 5) }
        #expect(abs(control.mean - controlSpends.reduce(0, +) / 19) < 1e-9)
        #expect(abs(treatment.mean - 14) < 1e-9)
        #expect(treatment.lift > 0.15 && treatment.lift < 0.25)
        #expect(treatment.liftCi.lower < treatment.lift && treatment.lift < treatment.liftCi.upper)
        #expect(treatment.pValue < 0.01)
        #expect(control.pValue == 1 && control.lift == 0)
        #expect(!results.srmDetected)

        // CUPED uses the pre-exposure spend as covariate and narrows the interval.
        let cuped = try await fixture.client.getResults(.with { $0.experimentKey = "checkout"; $0.metricKey = "revenue"; $0.cuped = true },
                                                        options: ExperimentationFixture.options())
        let narrow = cuped.variations[1].liftCi.upper - cuped.variations[1].liftCi.lower
        #expect(narrow < (treatment.liftCi.upper - treatment.liftCi.lower) / 2)
        // The sequential interval is wider than the fixed-horizon one.
        let sequential = try await fixture.client.getResults(.with { $0.experimentKey = "checkout"; $0.metricKey = "revenue"; $0.kind = .sequential },
                                                             options: ExperimentationFixture.options())
        #expect(sequential.variations[1].liftCi.upper - sequential.variations[1].liftCi.lower > treatment.liftCi.upper - treatment.liftCi.lower)

        await expectStatus(.failedPrecondition, mentioning: "DRAFT") {
            _ = try await fixture.client.getResults(.with { $0.experimentKey = "later"; $0.metricKey = "revenue" }, options: ExperimentationFixture.options())
        }
        await expectStatus(.notFound, mentioning: "nope") {
            _ = try await fixture.client.getResults(.with { $0.experimentKey = "nope"; $0.metricKey = "revenue" }, options: ExperimentationFixture.options())
        }
        await expectStatus(.invalidArgument, mentioning: "alpha") {
            _ = try await fixture.client.getResults(.with { $0.experimentKey = "checkout"; $0.metricKey = "revenue"; $0.alpha = 0.7 },
                                                    options: ExperimentationFixture.options())
        }
        await expectStatus(.invalidArgument, mentioning: "covariate_metric_key") {
            _ = try await fixture.client.getResults(.with { $0.experimentKey = "checkout"; $0.metricKey = "revenue"; $0.covariateMetricKey = "x" },
                                                    options: ExperimentationFixture.options())
        }
        await fixture.stop()
    }

    @Test func aSkewedSplitIsFlagged() async throws {
        let fixture = try await ExperimentationFixture()
        _ = try await fixture.create(ExperimentationFixture.experiment("skewed"))
        let exposures = (0..<1_300).map { index in
            Platform_Experimentation_V1_Exposure.with {
                $0.experimentKey = "skewed"
                $0.variationKey = index < 800 ? "control" : "treatment1"
                $0.unitID = "u\(index)"
            }
        }
        _ = try await fixture.client.logExposures(.with { $0.exposures = exposures }, options: ExperimentationFixture.options())
        let results = try await fixture.client.getResults(.with { $0.experimentKey = "skewed"; $0.metricKey = "purchase" },
                                                          options: ExperimentationFixture.options())
        #expect(results.srmDetected)
        #expect(results.srmPValue < 0.001)
        await fixture.stop()
    }
}
