/// Code that runs around every handler on a server: logging, metrics,
/// authentication, tracing. Interceptors run in order, outermost first; each
/// calls `next` to continue, or throws an `RPCError` to refuse the call.
public protocol ServerInterceptor: Sendable {
    func intercept(context: ServerContext, next: @Sendable () async throws -> Void) async throws
}

/// An interceptor whose work all happens as the call starts and as it ends
/// (logging, metrics, admission checks). Unlike a wrapping interceptor it
/// can also observe a call answered without a task (see
/// `RPCServiceMethod.unary(_:decode:immediately:_:)`), so a server whose
/// interceptors are all observers answers such calls on the event loop.
public protocol ServerCallObserver: ServerInterceptor {
    /// Before the handler runs. Throwing an `RPCError` refuses the call;
    /// the observers started before this one then see the error.
    func callStarting(context: ServerContext) throws
    /// Once the handler has returned (`error` nil) or thrown.
    func callEnded(context: ServerContext, error: (any Error)?)
}

extension ServerCallObserver {
    public func intercept(context: ServerContext, next: @Sendable () async throws -> Void) async throws {
        try callStarting(context: context)
        do {
            try await next()
        } catch {
            callEnded(context: context, error: error)
            throw error
        }
        callEnded(context: context, error: nil)
    }
}

struct InterceptorChain: Sendable {
    let interceptors: [any ServerInterceptor]
    /// The same interceptors as observers, when every one is: then calls
    /// can be answered without a task.
    let observers: [any ServerCallObserver]?

    init(interceptors: [any ServerInterceptor]) {
        self.interceptors = interceptors
        let observers = interceptors.compactMap { $0 as? any ServerCallObserver }
        self.observers = observers.count == interceptors.count ? observers : nil
    }

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

extension [any ServerCallObserver] {
    /// Starts every observer in order; if one refuses, the ones already
    /// started see its error (innermost first) and it is rethrown.
    func start(context: ServerContext) throws {
        for (index, observer) in enumerated() {
            do {
                try observer.callStarting(context: context)
            } catch {
                self[..<index].end(context: context, error: error)
                throw error
            }
        }
    }
}

extension Collection<any ServerCallObserver> {
    /// Ends every observer, innermost first, as unwinding wrappers would.
    func end(context: ServerContext, error: (any Error)?) {
        for observer in reversed() { observer.callEnded(context: context, error: error) }
    }
}
