// libFuzzer target: the protobuf decoding services do on untrusted bytes.
//
// Input: byte 0 picks one of the services' request messages (every request
// type of the generated contracts), the rest is the payload.
//   - ProtobufWire.Reader (Shared/ServiceKit/ProtobufWire.swift, compiled in
//     from its own file) walks the payload: tags, every wire type, strings,
//     nested payloads. Every read must stay inside the bytes (the target is
//     built with AddressSanitizer), and a payload the walker reads to its
//     end must be one SwiftProtobuf accepts too (the Reader's callers rely
//     on SwiftProtobuf to judge what the Reader gives up on, not the other
//     way round).
//   - The request message is decoded as a server does (`init(rpcPayload:)`
//     from a ByteBuffer); when it decodes, encoding it and decoding that
//     again must give the same bytes.
import MeridianRPC
import Contracts
import NIOCore
import SwiftProtobuf

private let requestTypes: [any SwiftProtobuf.Message.Type] = [
    Inference_CudaSharedMemoryRegisterRequest.self, Inference_CudaSharedMemoryStatusRequest.self,
    Inference_CudaSharedMemoryUnregisterRequest.self, Inference_LogSettingsRequest.self,
    Inference_ModelConfigRequest.self, Inference_ModelInferRequest.self, Inference_ModelMetadataRequest.self,
    Inference_ModelReadyRequest.self, Inference_ModelStatisticsRequest.self, Inference_RepositoryIndexRequest.self,
    Inference_RepositoryModelLoadRequest.self, Inference_RepositoryModelUnloadRequest.self,
    Inference_ServerLiveRequest.self, Inference_ServerMetadataRequest.self, Inference_ServerReadyRequest.self,
    Inference_SystemSharedMemoryRegisterRequest.self, Inference_SystemSharedMemoryStatusRequest.self,
    Inference_SystemSharedMemoryUnregisterRequest.self, Inference_TraceSettingRequest.self,
    Platform_Catalog_V1_BatchGetProductsRequest.self, Platform_Catalog_V1_CreateProductRequest.self,
    Platform_Catalog_V1_DeleteProductRequest.self, Platform_Catalog_V1_GetProductRequest.self,
    Platform_Catalog_V1_ImportProductsRequest.self, Platform_Catalog_V1_ListProductsRequest.self,
    Platform_Catalog_V1_SearchProductsRequest.self, Platform_Catalog_V1_UpdateProductRequest.self,
    Platform_Catalog_V1_WatchProductsRequest.self, Platform_Experimentation_V1_CreateExperimentRequest.self,
    Platform_Experimentation_V1_GetAssignmentsRequest.self, Platform_Experimentation_V1_GetExperimentRequest.self,
    Platform_Experimentation_V1_GetResultsRequest.self, Platform_Experimentation_V1_ListExperimentChangesRequest.self,
    Platform_Experimentation_V1_ListExperimentsRequest.self, Platform_Experimentation_V1_LogExposuresRequest.self,
    Platform_Experimentation_V1_TrackEventsRequest.self, Platform_Experimentation_V1_UpdateExperimentRequest.self,
    Platform_Featurestore_V1_ApplyFeatureServiceRequest.self, Platform_Featurestore_V1_ApplyFeatureViewRequest.self,
    Platform_Featurestore_V1_DeleteFeatureViewRequest.self, Platform_Featurestore_V1_GetFeatureServiceRequest.self,
    Platform_Featurestore_V1_GetFeatureViewRequest.self, Platform_Featurestore_V1_GetOnlineFeaturesRequest.self,
    Platform_Featurestore_V1_ListFeatureServicesRequest.self, Platform_Featurestore_V1_ListFeatureViewsRequest.self,
    Platform_Featurestore_V1_WriteFeaturesRequest.self, Platform_Personalization_V1_RankItemsRequest.self,
    Platform_Personalization_V1_RecommendRequest.self,
]

private enum Walk { case complete, gaveUp, group }

/// Reads every field of `reader`, trying nested payloads as messages (up to
/// `depth` levels) and as strings, the way hand-written decoders do.
private func walk(_ reader: inout ProtobufWire.Reader, depth: Int, keysFitUInt32: inout Bool) -> Walk {
    while !reader.isAtEnd {
        // What the key says, before `tag()` judges it: groups are the one
        // thing the Reader refuses by design.
        var peek = reader
        if let key = peek.varint() {
            if key > UInt64(UInt32.max) { keysFitUInt32 = false }
            if key & 7 == 3 || key & 7 == 4 { return .group }
        }
        let before = reader.remaining
        guard let (field, wireType) = reader.tag() else { return .gaveUp }
        precondition(field != 0 && reader.remaining < before, "tag() read nothing or field 0")
        switch wireType {
        case .lengthDelimited:
            var copy = reader
            if let text = copy.string() {
                precondition(String(validating: text.utf8, as: UTF8.self) == text, "string() gave invalid UTF-8")
            }
            guard var nested = reader.lengthDelimited() else { return .gaveUp }
            precondition(nested.remaining >= 0 && nested.remaining <= before, "nested reader larger than its parent")
            let bytes = nested.bytes
            precondition(bytes.count == nested.remaining, "bytes and remaining disagree")
            precondition(nested.isASCII == bytes.allSatisfy { $0 < 0x80 }, "isASCII is wrong")
            if depth > 0 {
                var ignored = true
                _ = walk(&nested, depth: depth - 1, keysFitUInt32: &ignored)
            }
        case .varint, .fixed64, .fixed32:
            guard reader.skip(wireType) else { return .gaveUp }
        }
        precondition(reader.remaining >= 0, "reader past its end")
    }
    return .complete
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProtobuf(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let type = requestTypes[Int(data[0]) % requestTypes.count]
    // A heap copy of exactly the payload, so AddressSanitizer sees any read past it.
    let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
    defer { payload.deallocate() }
    if size > 1 { payload.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1)) }

    var reader = ProtobufWire.Reader(UnsafeRawBufferPointer(payload))
    var keysFitUInt32 = true
    let walked = walk(&reader, depth: 8, keysFitUInt32: &keysFitUInt32)
    let acceptedBySwiftProtobuf = (try? Google_Protobuf_Empty(serializedBytes: Array(payload))) != nil
    if walked == .complete && keysFitUInt32 {
        precondition(acceptedBySwiftProtobuf, "ProtobufWire.Reader read to the end what SwiftProtobuf rejects")
    }
    if walked == .gaveUp && acceptedBySwiftProtobuf && keysFitUInt32 {
        preconditionFailure("ProtobufWire.Reader gave up on a payload SwiftProtobuf accepts")
    }

    // As a server decodes a request.
    roundTrip(type, ByteBuffer(bytes: UnsafeRawBufferPointer(payload)))
    return 0
}

private func roundTrip<Request: SwiftProtobuf.Message>(_ type: Request.Type, _ buffer: ByteBuffer) {
    guard let message = try? Request(rpcPayload: buffer) else { return }
    var options = BinaryEncodingOptions()
    options.useDeterministicOrdering = true
    guard let encoded: [UInt8] = try? message.serializedBytes(options: options) else {
        // Decoding checks required fields and UTF-8; encoding a decoded message cannot fail.
        preconditionFailure("\(type) decoded but does not encode")
    }
    guard let again = try? Request(serializedBytes: encoded) else {
        preconditionFailure("\(type): its own encoding does not decode")
    }
    let reencoded: [UInt8]? = try? again.serializedBytes(options: options)
    precondition(reencoded == encoded, "\(type): encode(decode(encode(x))) != encode(x)")
}
