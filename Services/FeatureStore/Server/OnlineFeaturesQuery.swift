import Contracts
import MeridianRPC
import NIOCore
import ServiceKit

/// A GetOnlineFeatures request as the lookup uses it. A model sends the
/// same feature references on every call, and the lookup only needs them
/// as a key to its resolved plan (`LookupPlans`); decoding them into
/// strings was 12% of GetOnlineFeatures' CPU for 1 entity x 50 features.
/// `init(payload:)` keeps the encoded reference list as it arrived, as that
/// key, and reads the entities itself.
struct OnlineFeaturesQuery {
    /// The request, without its feature references when `encodedReferences` is set.
    var request: Platform_Featurestore_V1_GetOnlineFeaturesRequest
    /// The `features` field's payload (a FeatureList) as received.
    var encodedReferences: [UInt8]?

    init(_ request: Platform_Featurestore_V1_GetOnlineFeaturesRequest) {
        self.request = request
        encodedReferences = nil
    }

    /// Reads the request. The common request (a plain reference list,
    /// entities of string or int64 values, full_feature_names) is read
    /// here, its reference list kept encoded; any other request is decoded
    /// whole by SwiftProtobuf, with its usual errors.
    init(payload: ByteBuffer) throws(RPCError) {
        if let query = payload.withUnsafeReadableBytes({ Self.read($0) }) {
            self = query
        } else {
            self.init(try Platform_Featurestore_V1_GetOnlineFeaturesRequest(rpcPayload: payload))
        }
    }

    /// The common request, or nil for anything else. SwiftProtobuf decoding
    /// the entity map (generic code, one message per value) was 8% of a
    /// 1 x 50 lookup.
    private static func read(_ bytes: UnsafeRawBufferPointer) -> OnlineFeaturesQuery? {
        var reader = ProtobufWire.Reader(bytes)
        var references: [UInt8]?
        var request = Platform_Featurestore_V1_GetOnlineFeaturesRequest()
        while !reader.isAtEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (2, .lengthDelimited):
                // A second list would merge into the first: SwiftProtobuf's case.
                guard references == nil, let list = reader.lengthDelimited(), isPlainReferenceList(list) else { return nil }
                references = list.bytes
            case (3, .lengthDelimited):
                guard var entry = reader.lengthDelimited(), let (key, values) = entityColumn(&entry) else { return nil }
                request.entities[key] = values  // a repeated key: the last wins, as for any map
            case (4, .varint):
                guard let flag = reader.varint() else { return nil }
                request.fullFeatureNames = flag != 0
            default:
                return nil  // feature_service (the oneof's last member wins), request_context, unknown fields
            }
        }
        guard let references else { return nil }
        // The selection is the encoded list; an empty list stands in for it so the request says "features".
        request.features = Platform_Featurestore_V1_FeatureList()
        var query = OnlineFeaturesQuery(request)
        query.encodedReferences = references
        return query
    }

    /// One `entities` map entry whose values are all string_val or
    /// int64_val, the only join key kinds; nil for anything else.
    private static func entityColumn(_ entry: inout ProtobufWire.Reader) -> (String, Platform_Featurestore_V1_RepeatedValue)? {
        var key: String?
        var column: Platform_Featurestore_V1_RepeatedValue?
        while !entry.isAtEnd {
            guard let (field, wireType) = entry.tag(), wireType == .lengthDelimited else { return nil }
            switch field {
            case 1:
                guard key == nil, let text = entry.string() else { return nil }
                key = text
            case 2:
                // A second value would merge into the first: SwiftProtobuf's case.
                guard column == nil, var list = entry.lengthDelimited() else { return nil }
                var values: [Platform_Featurestore_V1_Value] = []
                while !list.isAtEnd {
                    guard let (field, wireType) = list.tag(), field == 1, wireType == .lengthDelimited,
                          var encoded = list.lengthDelimited(), let value = joinKeyValue(&encoded) else { return nil }
                    values.append(value)
                }
                column = .with { $0.val = values }
            default:
                return nil
            }
        }
        return (key ?? "", column ?? Platform_Featurestore_V1_RepeatedValue())
    }

    /// A Value that is exactly one string_val or int64_val field.
    private static func joinKeyValue(_ encoded: inout ProtobufWire.Reader) -> Platform_Featurestore_V1_Value? {
        guard let (field, wireType) = encoded.tag() else { return nil }
        var value = Platform_Featurestore_V1_Value()
        switch (field, wireType) {
        case (2, .lengthDelimited):
            guard let text = encoded.string() else { return nil }
            value.stringVal = text
        case (4, .varint):
            guard let number = encoded.varint() else { return nil }
            value.int64Val = Int64(bitPattern: number)
        default:
            return nil
        }
        return encoded.isAtEnd ? value : nil
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
