import Foundation
import Logging
import MeridianRPC
import Synchronization
import SwiftProtobuf
import Testing

/// A unary method that answers `now:X` at once, fails `fail:X` at once with
/// INVALID_ARGUMENT, and leaves anything else to its task; each answer says
/// which path produced it.
private struct ImmediateService: RPCService {
    static let path = "/test.Immediate/Answer"
    let immediateAttempts = AttemptCounter()

    var methods: [RPCServiceMethod] {
        [
            .unary(Self.path,
                   decode: { payload throws(RPCError) in try Google_Protobuf_StringValue(rpcPayload: payload) },
                   immediately: { request, _ -> Google_Protobuf_StringValue? in
                       immediateAttempts.count.add(1, ordering: .relaxed)
                       if request.value.hasPrefix("fail:") { throw RPCError(.invalidArgument, String(request.value.dropFirst(5))) }
                       guard request.value.hasPrefix("now:") else { return nil }
                       return Google_Protobuf_StringValue("at once:" + request.value.dropFirst(4))
                   }) { request, _ -> Google_Protobuf_StringValue in
                // The task has the call's context, as every handler task does.
                let bound = ServerContext.current?.path == Self.path
                return Google_Protobuf_StringValue("in a task (context \(bound)):" + request.value)
            },
        ]
    }
}

private final class AttemptCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// Records every call it sees end, with its status code.
private final class RecordingObserver: ServerCallObserver {
    let started = Atomic<Int>(0)
    let ended = Mutex<[RPCStatus.Code]>([])

    func callStarting(context: ServerContext) { started.add(1, ordering: .relaxed) }

    func callEnded(context: ServerContext, error: (any Error)?) {
        let code = error.map { ($0 as? RPCError)?.code ?? .unknown } ?? .ok
        ended.withLock { $0.append(code) }
    }
}

/// Refuses calls that carry `x-refuse`.
private struct RefusingObserver: ServerCallObserver {
    func callStarting(context: ServerContext) throws {
        if context.requestMetadata["x-refuse"] != nil { throw RPCError(.permissionDenied, "refused") }
    }

    func callEnded(context: ServerContext, error: (any Error)?) {}
}

/// A plain wrapping interceptor: it can only run around a task.
private struct WrappingInterceptor: ServerInterceptor {
    func intercept(context: ServerContext, next: @Sendable () async throws -> Void) async throws {
        try await next()
    }
}

private struct ImmediateFixture {
    let server: RPCServer
    let channel: RPCChannel
    let service: ImmediateService

    static func start(interceptors: [any ServerInterceptor], executor: RPCServer.Configuration.HandlerExecutor = .eventLoop) async throws -> ImmediateFixture {
        var configuration = RPCServer.Configuration.defaults
        configuration.handlerExecutor = executor
        let service = ImmediateService()
        let server = RPCServer(configuration: configuration, services: [service], interceptors: interceptors, logger: Logger(label: "test"))
        let address = try await server.start()
        return ImmediateFixture(server: server, channel: try RPCChannel(host: "127.0.0.1", port: address.port!), service: service)
    }

    func call(_ value: String, metadata: Metadata = Metadata()) async throws -> String {
        let response: UnaryResponse<Google_Protobuf_StringValue> = try await channel.unary(
            path: ImmediateService.path, request: Google_Protobuf_StringValue(value), options: CallOptions(metadata: metadata))
        return response.message.value
    }

    func stop() async {
        await channel.close()
        await server.shutdown(gracePeriod: .seconds(1))
    }
}

@Suite struct ImmediateAnswerTests {
    @Test(arguments: RPCServer.Configuration.HandlerExecutor.allCases)
    func callsAnsweredAtOnceOrInATaskAreEachObservedOnce(executor: RPCServer.Configuration.HandlerExecutor) async throws {
        let recorder = RecordingObserver()
        let fixture = try await ImmediateFixture.start(interceptors: [recorder], executor: executor)
        #expect(try await fixture.call("now:a") == "at once:a")
        #expect(try await fixture.call("later:b") == "in a task (context true):later:b")
        let error = await #expect(throws: RPCError.self) { try await fixture.call("fail:bad field") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "bad field")

        // Many at once on one connection, both paths interleaved.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let value = index.isMultiple(of: 2) ? "now:\(index)" : "later:\(index)"
                    let expected = index.isMultiple(of: 2) ? "at once:\(index)" : "in a task (context true):later:\(index)"
                    let answer = try await fixture.call(value)
                    #expect(answer == expected)
                }
            }
            try await group.waitForAll()
        }
        await fixture.stop()
        #expect(recorder.started.load(ordering: .relaxed) == 203)
        let ended = recorder.ended.withLock { $0 }
        #expect(ended.count == 203)
        #expect(ended.filter { $0 == .ok }.count == 202)
        #expect(ended.filter { $0 == .invalidArgument }.count == 1)
    }

    @Test func aRefusingObserverStopsTheCallBeforeItsMethodRuns() async throws {
        let recorder = RecordingObserver()
        let fixture = try await ImmediateFixture.start(interceptors: [recorder, RefusingObserver()])
        var metadata = Metadata()
        metadata.add("x-refuse", value: .string("yes"))
        let error = await #expect(throws: RPCError.self) { try await fixture.call("now:a", metadata: metadata) }
        #expect(error?.code == .permissionDenied)
        #expect(fixture.service.immediateAttempts.count.load(ordering: .relaxed) == 0)
        // The outer observer saw the refusal, as it would around a task.
        #expect(recorder.ended.withLock { $0 } == [.permissionDenied])
        #expect(try await fixture.call("now:b") == "at once:b")
        await fixture.stop()
    }

    @Test func aWrappingInterceptorSendsEveryCallToItsTask() async throws {
        let fixture = try await ImmediateFixture.start(interceptors: [RecordingObserver(), WrappingInterceptor()])
        #expect(try await fixture.call("now:a") == "in a task (context true):now:a")
        #expect(fixture.service.immediateAttempts.count.load(ordering: .relaxed) == 0)
        await fixture.stop()
    }
}
