import Contracts
import MeridianRPC
import NIOCore
import ServiceKit

/// A GetOnlineFeatures request as the lookup uses it. A model sends the
/// same feature references on every call, and the lookup only needs them
/// as a key to its resolved plan (`LookupPlans`); decoding them into
/// strings was 12% of GetOnlineFeatures' CPU for 1 entity x 50 features. `init(payload:)` keeps the encoded
/// reference list as it arrived, as that key, and decodes the rest of the
/// request as usual.
struct OnlineFeaturesQuery {
    /// The request, without its feature references when `encodedReferences` is set.
    var request: Platform_Featurestore_V1_GetOnlineFeaturesRequest
    /// The `features` field's payload (a FeatureList) as received.
    var encodedReferences: [UInt8]?

    init(_ request: Platform_Featurestore_V1_GetOnlineFeaturesRequest) {
        self.request = request
        encodedReferences = nil
    }

    /// Reads the request. The reference list is kept encoded when it is
    /// the request's only feature selection and plain (ASCII references,
    /// nothing but the repeated field); any other request is decoded whole
    /// by SwiftProtobuf, with its usual errors.
    init(payload: ByteBuffer) throws(RPCError) {
        let split = payload.withUnsafeReadableBytes { bytes -> (references: [UInt8], rest: [UInt8])? in
            Self.split(bytes)
        }
        guard let split else {
            self.init(try Platform_Featurestore_V1_GetOnlineFeaturesRequest(rpcPayload: payload))
            return
        }
        var request = try Platform_Featurestore_V1_GetOnlineFeaturesRequest(rpcPayload: ByteBuffer(bytes: split.rest))
        // The selection is the encoded list; an empty list stands in for it so the request says "features".
        request.features = Platform_Featurestore_V1_FeatureList()
        self.init(request)
        encodedReferences = split.references
    }

    /// The `features` payload, and every other field's bytes in order.
    private static func split(_ bytes: UnsafeRawBufferPointer) -> (references: [UInt8], rest: [UInt8])? {
        var reader = ProtobufWire.Reader(bytes)
        var references: [UInt8]?
        var rest: [UInt8] = []
        rest.reserveCapacity(bytes.count)
        while !reader.isAtEnd {
            let fieldStart = bytes.count - reader.remaining
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (1, _):
                return nil  // feature_service: the oneof's last member wins; leave it to SwiftProtobuf
            case (2, .lengthDelimited):
                guard references == nil, let list = reader.lengthDelimited(), isPlainReferenceList(list) else { return nil }
                references = Array(UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - reader.remaining - list.remaining)..<(bytes.count - reader.remaining)]))
            default:
                guard reader.skip(wireType) else { return nil }
                rest.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[fieldStart..<(bytes.count - reader.remaining)]))
            }
        }
        guard let references else { return nil }
        return (references, rest)
    }

    /// Only field 1 (val) entries of ASCII text: such a list decodes to
    /// the same strings whenever its bytes are the same.
    private static func isPlainReferenceList(_ list: ProtobufWire.Reader) -> Bool {
        var list = list
        while !list.isAtEnd {
            guard let (field, wireType) = list.tag(), field == 1, wireType == .lengthDelimited,
                  let reference = list.lengthDelimited(), reference.isASCII else { return false }
        }
        return true
    }
}
