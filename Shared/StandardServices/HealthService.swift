import Foundation
import MeridianRPC
import StandardProtos
import Synchronization

public typealias ServingStatus = Grpc_Health_V1_HealthCheckResponse.ServingStatus

/// The standard `grpc.health.v1.Health` service: a serving status per
/// service name, `""` meaning the server as a whole. Check answers NOT_FOUND
/// for names it does not know; Watch streams every change until the caller
/// leaves.
public final class HealthService: Grpc_Health_V1_HealthHandler, Sendable {
    private struct State {
        var statuses: [String: ServingStatus] = [:]
        var watchers: [String: [UUID: AsyncStream<ServingStatus>.Continuation]] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Sets the status of `service` (`""` for the whole server) and tells
    /// every watcher.
    public func setStatus(_ status: ServingStatus, for service: String = "") {
        let watchers = state.withLock { state -> [AsyncStream<ServingStatus>.Continuation] in
            state.statuses[service] = status
            return Array(state.watchers[service, default: [:]].values)
        }
        for watcher in watchers { watcher.yield(status) }
    }

    /// Sets every known service, and the server, to `status` (used at
    /// start-up and shutdown).
    public func setAll(_ status: ServingStatus) {
        let names = state.withLock { Array($0.statuses.keys) }
        for name in Set(names + [""]) { setStatus(status, for: name) }
    }

    /// Ends every Watch stream (with OK) so shutdown does not wait on them.
    public func endWatches() {
        let watchers = state.withLock { state -> [AsyncStream<ServingStatus>.Continuation] in
            defer { state.watchers = [:] }
            return state.watchers.values.flatMap(\.values)
        }
        for watcher in watchers { watcher.finish() }
    }

    public func status(of service: String) -> ServingStatus? {
        state.withLock { $0.statuses[service] }
    }

    public func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = status(of: request.service) else {
            throw RPCError(.notFound, "unknown service \"\(request.service)\"")
        }
        return .with { $0.status = status }
    }

    public func list(request: Grpc_Health_V1_HealthListRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthListResponse {
        let statuses = state.withLock { $0.statuses }
        return .with { response in
            for (name, status) in statuses {
                response.statuses[name] = .with { $0.status = status }
            }
        }
    }

    public func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        responses: RPCResponseWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        let id = UUID()
        let (stream, continuation) = AsyncStream.makeStream(of: ServingStatus.self, bufferingPolicy: .bufferingNewest(1))
        let current = state.withLock { state -> ServingStatus in
            state.watchers[request.service, default: [:]][id] = continuation
            return state.statuses[request.service] ?? .serviceUnknown
        }
        defer {
            _ = state.withLock { $0.watchers[request.service]?.removeValue(forKey: id) }
            continuation.finish()
        }
        try await responses.write(.with { $0.status = current })
        var last = current
        for await status in stream where status != last {
            try await responses.write(.with { $0.status = status })
            last = status
        }
    }
}
