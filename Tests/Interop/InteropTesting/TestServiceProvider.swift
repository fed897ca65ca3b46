import Foundation
import MeridianRPC

/// The server side of gRPC's interop tests (grpc/grpc
/// doc/interop-test-descriptions.md), on our runtime.
public struct TestServiceProvider: Grpc_Testing_TestServiceHandler {
    public init() {}

    public func emptyCall(request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        echoMetadata(context)
        return Grpc_Testing_Empty()
    }

    public func unaryCall(request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        echoMetadata(context)
        if request.expectCompressed.value {
            throw RPCError(.invalidArgument, "expected a compressed request, got an uncompressed one")
        }
        try throwEchoedStatus(request.hasResponseStatus ? request.responseStatus : nil)
        return .with { $0.payload = Self.payload(size: request.responseSize) }
    }

    public func cacheableUnaryCall(request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try await unaryCall(request: request, context: context)
    }

    public func streamingOutputCall(
        request: Grpc_Testing_StreamingOutputCallRequest,
        responses: RPCResponseWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        echoMetadata(context)
        for parameters in request.responseParameters {
            try await send(parameters, to: responses)
        }
        try throwEchoedStatus(request.hasResponseStatus ? request.responseStatus : nil)
    }

    public func streamingInputCall(
        requests: RPCRequestStream<Grpc_Testing_StreamingInputCallRequest>,
        context: ServerContext
    ) async throws -> Grpc_Testing_StreamingInputCallResponse {
        echoMetadata(context)
        var total = 0
        for try await request in requests { total += request.payload.body.count }
        return .with { $0.aggregatedPayloadSize = Int32(total) }
    }

    public func fullDuplexCall(
        requests: RPCRequestStream<Grpc_Testing_StreamingOutputCallRequest>,
        responses: RPCResponseWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        echoMetadata(context)
        for try await request in requests {
            for parameters in request.responseParameters {
                try await send(parameters, to: responses)
            }
            try throwEchoedStatus(request.hasResponseStatus ? request.responseStatus : nil)
        }
    }

    public func halfDuplexCall(
        requests: RPCRequestStream<Grpc_Testing_StreamingOutputCallRequest>,
        responses: RPCResponseWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        var buffered: [Grpc_Testing_StreamingOutputCallRequest] = []
        for try await request in requests { buffered.append(request) }
        for request in buffered {
            for parameters in request.responseParameters { try await send(parameters, to: responses) }
        }
    }

    public func unimplementedCall(request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        throw RPCError(.unimplemented, "UnimplementedCall is never implemented")
    }

    // MARK: Helpers

    static func payload(size: Int32) -> Grpc_Testing_Payload {
        .with { $0.body = Data(count: Int(max(size, 0))) }
    }

    private func send(_ parameters: Grpc_Testing_ResponseParameters, to responses: RPCResponseWriter<Grpc_Testing_StreamingOutputCallResponse>) async throws {
        if parameters.intervalUs > 0 {
            try await Task.sleep(for: .microseconds(Int(parameters.intervalUs)))
        }
        try await responses.write(.with { $0.payload = Self.payload(size: parameters.size) })
    }

    private func throwEchoedStatus(_ status: Grpc_Testing_EchoStatus?) throws {
        guard let status, status.code != 0 else { return }
        throw RPCError(RPCStatus.Code(wireValue: Int(status.code)), status.message)
    }

    /// The custom_metadata case: initial metadata comes back as a header,
    /// trailing metadata as a trailer.
    private func echoMetadata(_ context: ServerContext) {
        if let initial = context.requestMetadata["x-grpc-test-echo-initial"] {
            context.addResponseHeader("x-grpc-test-echo-initial", .string(initial))
        }
        if let trailing = context.requestMetadata.binary("x-grpc-test-echo-trailing-bin") {
            context.addTrailer("x-grpc-test-echo-trailing-bin", .binary(trailing))
        }
    }
}
