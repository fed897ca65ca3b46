import Foundation
import Logging
import MeridianRPC
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization
import Testing

/// A service whose behaviour the tests script: fail a number of times, then
/// succeed; report the deadline and metadata it sees; call itself.
final class ScriptedService: RPCService, Sendable {
    static let flakyPath = "/test.Scripted/Flaky"
    static let inspectPath = "/test.Scripted/Inspect"
    static let relayPath = "/test.Scripted/Relay"
    static let slowPath = "/test.Scripted/Slow"

    let failuresLeft: Atomic<Int>
    let attempts = Atomic<Int>(0)
    let pushbackMilliseconds: Int?
    let relayChannel = Mutex<RPCChannel?>(nil)

    init(failures: Int, pushbackMilliseconds: Int? = nil) {
        failuresLeft = Atomic(failures)
        self.pushbackMilliseconds = pushbackMilliseconds
    }

    var methods: [RPCServiceMethod] {
        [
            .unary(Self.flakyPath) { [self] (request: Google_Protobuf_StringValue, _) -> Google_Protobuf_StringValue in
                attempts.add(1, ordering: .relaxed)
                if failuresLeft.subtract(1, ordering: .relaxed).oldValue > 0 {
                    var trailers = Metadata()
                    if let pushbackMilliseconds { trailers.add("grpc-retry-pushback-ms", String(pushbackMilliseconds)) }
                    throw RPCError(.unavailable, "try again", trailers: trailers)
                }
                return request
            },
            .unary(Self.inspectPath) { (_: Google_Protobuf_StringValue, context) -> Google_Protobuf_StringValue in
                let remaining = context.timeRemaining.map { "\($0.nanoseconds / 1_000_000)" } ?? "none"
                return .with { $0.value = "\(remaining)|\(context.requestMetadata["x-tenant-id"] ?? "")" }
            },
            .unary(Self.relayPath) { [self] (request: Google_Protobuf_StringValue, _) -> Google_Protobuf_StringValue in
                // An outgoing call from inside a handler: it must inherit the
                // deadline and the tenant.
                let channel = relayChannel.withLock { $0 }!
                let inner: UnaryResponse<Google_Protobuf_StringValue> = try await channel.unary(path: Self.inspectPath, request: request)
                return inner.message
            },
            .unary(Self.slowPath) { (request: Google_Protobuf_Int64Value, _) -> Google_Protobuf_Int64Value in
                try await Task.sleep(for: .milliseconds(request.value))
                return request
            },
        ]
    }
}

@Suite struct ClientBehaviourTests {
    func start(_ service: ScriptedService, port: Int = 0) async throws -> (RPCServer, Int) {
        var configuration = RPCServer.Configuration.defaults
        configuration.port = port
        let server = RPCServer(configuration: configuration, services: [service], logger: Logger(label: "test"))
        let address = try await server.start()
        return (server, address.port!)
    }

    @Test func retriesUnavailableUpToThePolicy() async throws {
        let service = ScriptedService(failures: 2)
        let (server, port) = try await start(service)
        var configuration = RPCChannel.Configuration.defaults
        configuration.retryPolicies["/test.Scripted/"] = RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(5))
        let channel = try RPCChannel(host: "127.0.0.1", port: port, configuration: configuration)
        let response: UnaryResponse<Google_Protobuf_StringValue> = try await channel.unary(
            path: ScriptedService.flakyPath, request: Google_Protobuf_StringValue("ok"))
        #expect(response.message.value == "ok")
        #expect(service.attempts.load(ordering: .relaxed) == 3)
        await channel.close()
        await server.shutdown()
    }

    @Test func givesUpAfterMaxAttemptsAndNeverRetriesWithoutAPolicy() async throws {
        let service = ScriptedService(failures: 10)
        let (server, port) = try await start(service)
        var configuration = RPCChannel.Configuration.defaults
        configuration.retryPolicies[ScriptedService.flakyPath] = RetryPolicy(maxAttempts: 2, initialBackoff: .milliseconds(5))
        let retrying = try RPCChannel(host: "127.0.0.1", port: port, configuration: configuration)
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_StringValue> = try await retrying.unary(path: ScriptedService.flakyPath, request: Google_Protobuf_StringValue("x"))
        }
        #expect(service.attempts.load(ordering: .relaxed) == 2)
        let plain = try RPCChannel(host: "127.0.0.1", port: port)
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_StringValue> = try await plain.unary(path: ScriptedService.flakyPath, request: Google_Protobuf_StringValue("x"))
        }
        #expect(service.attempts.load(ordering: .relaxed) == 3)
        await retrying.close()
        await plain.close()
        await server.shutdown()
    }

    @Test func negativePushbackStopsRetrying() async throws {
        let service = ScriptedService(failures: 5, pushbackMilliseconds: -1)
        let (server, port) = try await start(service)
        var configuration = RPCChannel.Configuration.defaults
        configuration.retryPolicies["/test.Scripted/"] = RetryPolicy(maxAttempts: 5, initialBackoff: .milliseconds(5))
        let channel = try RPCChannel(host: "127.0.0.1", port: port, configuration: configuration)
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_StringValue> = try await channel.unary(path: ScriptedService.flakyPath, request: Google_Protobuf_StringValue("x"))
        }
        #expect(service.attempts.load(ordering: .relaxed) == 1)
        await channel.close()
        await server.shutdown()
    }

    @Test func handlersPropagateDeadlineAndTenantToOutgoingCalls() async throws {
        let service = ScriptedService(failures: 0)
        let (server, port) = try await start(service)
        let inner = try RPCChannel(host: "127.0.0.1", port: port)
        service.relayChannel.withLock { $0 = inner }
        let outer = try RPCChannel(host: "127.0.0.1", port: port)
        // A generous deadline: the suite starts many servers at once on two cores.
        var options = CallOptions(timeout: .seconds(20))
        options.metadata.add("x-tenant-id", "tenant-7")
        let response: UnaryResponse<Google_Protobuf_StringValue> = try await outer.unary(
            path: ScriptedService.relayPath, request: Google_Protobuf_StringValue(""), options: options)
        let parts = response.message.value.split(separator: "|", omittingEmptySubsequences: false)
        let remaining = try #require(Int(parts[0]))
        #expect(remaining > 0 && remaining < 20000, "inner deadline \(remaining) ms must be under the outer 20000 ms")
        #expect(parts[1] == "tenant-7")
        await inner.close()
        await outer.close()
        await server.shutdown()
    }

    @Test func waitForReadyWaitsForTheServerToComeUp() async throws {
        // Reserve a free port, then start the server on it only after the call began.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        var configuration = RPCChannel.Configuration.defaults
        configuration.initialReconnectBackoff = .milliseconds(50)
        configuration.maxReconnectBackoff = .milliseconds(100)
        let channel = try RPCChannel(host: "127.0.0.1", port: port, configuration: configuration)
        let call = Task {
            let response: UnaryResponse<Google_Protobuf_StringValue> = try await channel.unary(
                path: ScriptedService.flakyPath, request: Google_Protobuf_StringValue("late"),
                options: CallOptions(timeout: .seconds(10), waitForReady: true))
            return response.message.value
        }
        try await Task.sleep(for: .milliseconds(300))
        let (server, _) = try await start(ScriptedService(failures: 0), port: port)
        #expect(try await call.value == "late")
        await channel.close()
        await server.shutdown()
    }

    @Test func gracefulShutdownFinishesCallsInFlightAndRefusesNewOnes() async throws {
        let (server, port) = try await start(ScriptedService(failures: 0))
        let channel = try RPCChannel(host: "127.0.0.1", port: port)
        let slow = Task {
            let response: UnaryResponse<Google_Protobuf_Int64Value> = try await channel.unary(
                path: ScriptedService.slowPath, request: Google_Protobuf_Int64Value(300))
            return response.message.value
        }
        try await waitUntil { server.callsInFlight == 1 }
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(5)) }
        #expect(try await slow.value == 300)
        await shutdown.value
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_Int64Value> = try await channel.unary(
                path: ScriptedService.slowPath, request: Google_Protobuf_Int64Value(1))
        }
        await channel.close()
    }

    @Test func shutdownCancelsHandlersStillRunningAfterTheGracePeriod() async throws {
        let (server, port) = try await start(ScriptedService(failures: 0))
        let channel = try RPCChannel(host: "127.0.0.1", port: port)
        let stuck = Task {
            let _: UnaryResponse<Google_Protobuf_Int64Value> = try await channel.unary(
                path: ScriptedService.slowPath, request: Google_Protobuf_Int64Value(60_000))
        }
        try await waitUntil { server.callsInFlight == 1 }
        let start = ContinuousClock.now
        await server.shutdown(gracePeriod: .milliseconds(200))
        #expect(ContinuousClock.now - start < .seconds(5))
        let result = await stuck.result
        #expect(throws: RPCError.self) { try result.get() }
        await channel.close()
    }
}

/// Adds a header to every call, or refuses calls to one path.
struct TenantInterceptor: ClientInterceptor {
    func prepare(path: String, options: inout CallOptions) async throws {
        if path == ScriptedService.slowPath { throw RPCError(.permissionDenied, "refused locally") }
        options.metadata.add("x-tenant-id", "from-interceptor")
    }
}

@Suite struct ClientInterceptorTests {
    @Test func interceptorsAddMetadataAndCanRefuse() async throws {
        let server = RPCServer(configuration: .defaults, services: [ScriptedService(failures: 0)], logger: Logger(label: "test"))
        let port = try await server.start().port!
        var configuration = RPCChannel.Configuration.defaults
        configuration.interceptors = [TenantInterceptor()]
        let channel = try RPCChannel(host: "127.0.0.1", port: port, configuration: configuration)
        let response: UnaryResponse<Google_Protobuf_StringValue> = try await channel.unary(
            path: ScriptedService.inspectPath, request: Google_Protobuf_StringValue(""))
        #expect(response.message.value.hasSuffix("|from-interceptor"))
        let refused = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<Google_Protobuf_Int64Value> = try await channel.unary(
                path: ScriptedService.slowPath, request: Google_Protobuf_Int64Value(1))
        }
        #expect(refused?.code == .permissionDenied)
        await channel.close()
        await server.shutdown()
    }
}

@Suite struct HedgingTests {
    @Test func aHedgedAttemptAnswersWhenTheFirstIsSlow() async throws {
        let server = RPCServer(configuration: .defaults, services: [ScriptedService(failures: 0)], logger: Logger(label: "test"))
        let port = try await server.start().port!
        var configuration = RPCChannel.Configuration.defaults
        configuration.hedgingPolicies[ScriptedService.slowPath] = HedgingPolicy(maxAttempts: 2, hedgingDelay: .milliseconds(50))
        let channel = try RPCChannel(host: "127.0.0.1", port: port, configuration: configuration)
        // Both attempts carry the same request; the point is that the call
        // returns with two attempts sent, and the loser is cancelled.
        // (No wall-clock bound here: on a loaded machine it is flaky and proves nothing.)
        let response: UnaryResponse<Google_Protobuf_Int64Value> = try await channel.unary(
            path: ScriptedService.slowPath, request: Google_Protobuf_Int64Value(200))
        #expect(response.message.value == 200)
        try await waitUntil { server.callsInFlight == 0 }
        await channel.close()
        await server.shutdown()
    }

    @Test func nonFatalFailuresFallThroughToTheNextAttempt() async throws {
        let service = ScriptedService(failures: 1)
        let server = RPCServer(configuration: .defaults, services: [service], logger: Logger(label: "test"))
        let port = try await server.start().port!
        var configuration = RPCChannel.Configuration.defaults
        configuration.hedgingPolicies["/test.Scripted/"] = HedgingPolicy(maxAttempts: 3, hedgingDelay: .milliseconds(10))
        let channel = try RPCChannel(host: "127.0.0.1", port: port, configuration: configuration)
        let response: UnaryResponse<Google_Protobuf_StringValue> = try await channel.unary(
            path: ScriptedService.flakyPath, request: Google_Protobuf_StringValue("ok"))
        #expect(response.message.value == "ok")
        #expect(service.attempts.load(ordering: .relaxed) >= 2)
        await channel.close()
        await server.shutdown()
    }
}
