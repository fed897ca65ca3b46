/// Code that runs before every outgoing call of a channel, of any kind:
/// adding credentials or tracing headers, or refusing a call locally by
/// throwing an `RPCError`. Interceptors run in the order configured.
public protocol ClientInterceptor: Sendable {
    func prepare(path: String, options: inout CallOptions) async throws
}
