import Contracts
import ServiceKit
import SwiftProtobuf

/// The parts of an encoded `Assignment` that depend only on the experiment,
/// as protobuf bytes (tag, length, payload) ready to copy.
struct AssignmentWireFields: Sendable {
    /// Field 1, experiment_key.
    let key: [UInt8]
    /// Per variation: fields 2 and 3, variation_key and variation_index.
    let variations: [[UInt8]]
    /// Per variation: field 9, value (empty when the variation has none).
    let values: [[UInt8]]
    /// Field 5, hash_attribute, for the hash attribute and the fallback.
    let hashAttribute: [UInt8]
    let fallbackAttribute: [UInt8]

    init(_ experiment: Experiment, hashAttribute: String) {
        var key: [UInt8] = []
        ProtobufWire.stringField(1, experiment.key, to: &key)
        self.key = key
        variations = experiment.variations.enumerated().map { index, variation in
            var bytes: [UInt8] = []
            ProtobufWire.stringField(2, variation.key, to: &bytes)
            if index != 0 { ProtobufWire.varintField(3, UInt64(index), to: &bytes) }
            return bytes
        }
        values = experiment.variations.map { variation in
            guard variation.hasValue, let value: [UInt8] = try? variation.value.serializedBytes() else { return [] }
            var bytes: [UInt8] = []
            ProtobufWire.bytesField(9, value, to: &bytes)
            return bytes
        }
        var primary: [UInt8] = [], fallback: [UInt8] = []
        ProtobufWire.stringField(5, hashAttribute, to: &primary)
        ProtobufWire.stringField(5, experiment.fallbackAttribute, to: &fallback)
        self.hashAttribute = primary
        fallbackAttribute = fallback
    }
}

/// `GetAssignmentsResponse.assignments` written straight to protobuf bytes
/// from assignment decisions. Building an `Assignment` message per
/// experiment and encoding it cost as much as deciding the assignment
/// itself; here the experiment's fixed fields are copied from bytes
/// prepared at load and only the unit's own fields are encoded. The bytes
/// follow the response message (`ServerContext.appendEncodedResponseFields`):
/// on the wire it is the same repeated field 1.
public struct AssignmentsEncoder {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends one Assignment, fields in number order as SwiftProtobuf
    /// writes them.
    public mutating func append(_ decision: AssignableExperiment.Decision, of experiment: AssignableExperiment) {
        let wire = experiment.wire
        let variation = wire.variations.indices.contains(decision.index) ? decision.index : nil
        let attributeField = decision.unit.map { $0.isFallback ? wire.fallbackAttribute : wire.hashAttribute } ?? []
        let unitValue = decision.unit?.value.utf8.count ?? 0
        var size = wire.key.count + attributeField.count
        if let variation { size += wire.variations[variation].count + wire.values[variation].count }
        if decision.inExperiment { size += 2 }
        if unitValue > 0 { size += 1 + ProtobufWire.varintSize(UInt64(unitValue)) + unitValue }
        if decision.bucket != nil { size += 9 }
        if decision.reason.rawValue != 0 { size += 1 + ProtobufWire.varintSize(UInt64(decision.reason.rawValue)) }
        if decision.sticky { size += 2 }

        // Written on the stack at its exact size, then copied once.
        let total = 1 + ProtobufWire.varintSize(UInt64(size)) + size
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total) { buffer in
            var writer = ProtobufWire.Writer(buffer)
            writer.byte(0x0A)  // GetAssignmentsResponse.assignments = 1
            writer.varint(UInt64(size))
            writer.bytes(wire.key)
            if let variation { writer.bytes(wire.variations[variation]) }
            if decision.inExperiment { writer.byte(4 << 3); writer.byte(1) }
            writer.bytes(attributeField)
            if unitValue > 0, let unit = decision.unit {
                writer.byte(6 << 3 | 2)
                writer.varint(UInt64(unitValue))
                writer.utf8(unit.value)
            }
            if let bucket = decision.bucket {
                writer.byte(7 << 3 | 1)
                writer.fixed64(bucket.bitPattern)
            }
            if decision.reason.rawValue != 0 {
                writer.byte(8 << 3)
                writer.varint(UInt64(decision.reason.rawValue))
            }
            if let variation { writer.bytes(wire.values[variation]) }
            if decision.sticky { writer.byte(10 << 3); writer.byte(1) }
            precondition(writer.count == total, "AssignmentsEncoder: size computed \(total), wrote \(writer.count)")
            bytes.append(contentsOf: buffer)
        }
    }
}
