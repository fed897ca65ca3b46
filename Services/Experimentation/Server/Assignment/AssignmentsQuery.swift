import Contracts
import MeridianRPC
import NIOCore
import ServiceKit
import SwiftProtobuf

/// A GetAssignments request as assignment uses it: the unit's attributes
/// already as `JSONValue`s.
///
/// `init(payload:)` reads the request's bytes straight into that shape.
/// Going through `Google_Protobuf_Struct` first cost more than assigning
/// the unit to 50 experiments: SwiftProtobuf decodes map fields through
/// generic code, and every value was then converted a second time.
struct AssignmentsQuery {
    var attributes: [String: JSONValue]
    var experimentKeys: [String]
    var logExposures: Bool
    /// Encoded size of the attributes, for the 64 KiB limit.
    var attributesSize: Int

    init(_ request: Platform_Experimentation_V1_GetAssignmentsRequest) {
        attributes = request.attributes.fields.mapValues(JSONValue.init)
        experimentKeys = request.experimentKeys
        logExposures = request.logExposures
        // An upper bound that needs no encoding; only large inputs are measured exactly.
        attributesSize = Self.estimatedSize(request.attributes) > ExperimentValidation.maxConditionBytes
            ? ((try? request.attributes.serializedBytes() as [UInt8])?.count ?? 0) : 0
    }

    /// Decodes a request payload. The usual encoding is read directly; any
    /// other (unknown fields, a value setting two kinds, deep nesting,
    /// malformed bytes) goes through SwiftProtobuf, which gives the same
    /// result or the same error as every other method.
    init(payload: ByteBuffer) throws(RPCError) {
        let direct = payload.withUnsafeReadableBytes { bytes -> AssignmentsQuery? in
            var reader = ProtobufWire.Reader(bytes)
            return AssignmentsQuery(reading: &reader)
        }
        if let direct {
            self = direct
        } else {
            self.init(try Platform_Experimentation_V1_GetAssignmentsRequest(rpcPayload: payload))
        }
    }

    private init?(reading reader: inout ProtobufWire.Reader) {
        attributes = Dictionary(minimumCapacity: 8)  // a unit usually has a few attributes: no regrowth
        experimentKeys = []
        logExposures = false
        attributesSize = 0
        while !reader.isAtEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (1, .lengthDelimited):
                guard var object = reader.lengthDelimited() else { return nil }
                attributesSize += object.remaining
                // A repeated message field merges: its map entries add up.
                guard Self.readStruct(&object, into: &attributes, depth: 0) else { return nil }
            case (2, .lengthDelimited):
                guard let key = reader.string() else { return nil }
                experimentKeys.append(key)
            case (3, .varint):
                guard let flag = reader.varint() else { return nil }
                logExposures = flag != 0
            default:
                return nil
            }
        }
    }

    /// Nesting deeper than this goes through SwiftProtobuf (and its own limit).
    private static let maxDepth = 16

    /// `google.protobuf.Struct`: repeated map entries (key = 1, value = 2).
    private static func readStruct(_ reader: inout ProtobufWire.Reader, into object: inout [String: JSONValue], depth: Int) -> Bool {
        guard depth < maxDepth else { return false }
        while !reader.isAtEnd {
            guard let (field, wireType) = reader.tag(), field == 1, wireType == .lengthDelimited,
                  var entry = reader.lengthDelimited() else { return false }
            var key: String?
            var value: JSONValue?
            while !entry.isAtEnd {
                guard let (entryField, entryType) = entry.tag(), entryType == .lengthDelimited else { return false }
                switch entryField {
                case 1 where key == nil:
                    guard let text = entry.string() else { return false }
                    key = text
                case 2 where value == nil:
                    guard var encoded = entry.lengthDelimited(), let decoded = readValue(&encoded, depth: depth + 1) else { return false }
                    value = decoded
                default:
                    return false
                }
            }
            // Map semantics: a missing key is "", a missing value the default (null); the last entry for a key wins.
            object[key ?? ""] = value ?? .null
        }
        return true
    }

    /// `google.protobuf.Value`: one field of its `kind` oneof, or none (null).
    private static func readValue(_ reader: inout ProtobufWire.Reader, depth: Int) -> JSONValue? {
        guard !reader.isAtEnd else { return .null }
        guard let (field, wireType) = reader.tag() else { return nil }
        let value: JSONValue
        switch (field, wireType) {
        case (1, .varint):
            guard reader.varint() != nil else { return nil }
            value = .null
        case (2, .fixed64):
            guard let bits = reader.fixed64() else { return nil }
            value = .number(Double(bitPattern: bits))
        case (3, .lengthDelimited):
            guard let text = reader.string() else { return nil }
            value = .string(text)
        case (4, .varint):
            guard let flag = reader.varint() else { return nil }
            value = .bool(flag != 0)
        case (5, .lengthDelimited):
            guard var nested = reader.lengthDelimited() else { return nil }
            var object: [String: JSONValue] = [:]
            guard readStruct(&nested, into: &object, depth: depth) else { return nil }
            value = .object(object)
        case (6, .lengthDelimited):
            guard depth < maxDepth, var list = reader.lengthDelimited() else { return nil }
            var values: [JSONValue] = []
            while !list.isAtEnd {
                guard let (listField, listType) = list.tag(), listField == 1, listType == .lengthDelimited,
                      var element = list.lengthDelimited(), let decoded = readValue(&element, depth: depth + 1) else { return nil }
                values.append(decoded)
            }
            value = .array(values)
        default:
            return nil
        }
        // A second kind in the same value: SwiftProtobuf's oneof rules decide.
        return reader.isAtEnd ? value : nil
    }

    /// At least the encoded size of `object`: keys and strings plus a
    /// generous 16 bytes of framing per value.
    static func estimatedSize(_ object: Google_Protobuf_Struct) -> Int {
        object.fields.reduce(0) { $0 + $1.key.utf8.count + estimatedSize($1.value) }
    }

    static func estimatedSize(_ value: Google_Protobuf_Value) -> Int {
        switch value.kind {
        case .stringValue(let text): 16 + text.utf8.count
        case .structValue(let object): 16 + estimatedSize(object)
        case .listValue(let list): 16 + list.values.reduce(0) { $0 + estimatedSize($1) }
        default: 16
        }
    }
}
