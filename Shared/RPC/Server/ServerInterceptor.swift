/// Code that runs around every handler on a server: logging, metrics,
/// authentication, tracing. Interceptors run in order, outermost first; each
/// calls `next` to continue, or throws an `RPCError` to refuse the call.
public protocol ServerInterceptor: Sendable {
    func intercept(context: ServerContext, next: @Sendable () async throws -> Void) async throws
}

struct InterceptorChain: Sendable {
    let interceptors: [any ServerInterceptor]

    /// Runs the handler through the chain.
    func run(context: ServerContext, handler: @escaping @Sendable () async throws -> Void) async throws {
        try await invoke(index: 0, context: context, handler: handler)
    }

    private func invoke(index: Int, context: ServerContext, handler: @escaping @Sendable () async throws -> Void) async throws {
        guard index < interceptors.count else { return try await handler() }
        try await interceptors[index].intercept(context: context) {
            try await self.invoke(index: index + 1, context: context, handler: handler)
        }
    }
}
