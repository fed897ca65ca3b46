import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The HTTP admin endpoint every service exposes next to its gRPC port:
///
/// - `GET /healthz`  200 while the process runs (liveness)
/// - `GET /readyz`   200 while serving, 503 before start and while draining
/// - `GET /metrics`  Prometheus text format
final class AdminServer: Sendable {
    typealias Readiness = @Sendable () -> Bool
    typealias MetricsExporter = @Sendable () -> [UInt8]

    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func start(host: String, port: Int, ready: @escaping Readiness, metrics: MetricsExporter?, logger: Logger) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(ready: ready, metrics: metrics))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("admin HTTP listening", metadata: ["address": "\(channel.localAddress!)"])
        return AdminServer(channel: channel)
    }

    var port: Int? { channel.localAddress?.port }

    func stop() async {
        try? await channel.close()
    }
}

private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let ready: AdminServer.Readiness
    let metrics: AdminServer.MetricsExporter?
    private var uri = ""
    private var method = HTTPMethod.GET
    private var keepAlive = false

    init(ready: @escaping AdminServer.Readiness, metrics: AdminServer.MetricsExporter?) {
        self.ready = ready
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            uri = head.uri
            method = head.method
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            let (status, contentType, body) = respond()
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: String(body.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }

    private func respond() -> (HTTPResponseStatus, String, [UInt8]) {
        guard method == .GET else { return (.methodNotAllowed, "text/plain", Array("GET only\n".utf8)) }
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        switch path {
        case "/healthz":
            return (.ok, "text/plain", Array("ok\n".utf8))
        case "/readyz":
            return ready() ? (.ok, "text/plain", Array("ready\n".utf8)) : (.serviceUnavailable, "text/plain", Array("not ready\n".utf8))
        case "/metrics":
            guard let metrics else { return (.notFound, "text/plain", Array("metrics are not enabled\n".utf8)) }
            return (.ok, "text/plain; version=0.0.4", metrics())
        default:
            return (.notFound, "text/plain", Array("not found: try /healthz, /readyz or /metrics\n".utf8))
        }
    }
}
