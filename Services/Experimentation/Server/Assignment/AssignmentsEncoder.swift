import Contracts
import MeridianRPC
import NIOCore
import ServiceKit
import SwiftProtobuf

/// The parts of an encoded `Assignment` that depend only on the experiment,
/// as protobuf bytes (tag, length, payload) ready to copy. One allocation
/// holds a table of spans and then the bytes, and experiments keep a plain
/// pointer to it: GetAssignments reads several spans per experiment per
/// call, and each object or array on the way to them was a dependent load
/// that missed the cache once a socket write had been through it.
struct AssignmentWireFields: @unchecked Sendable {
    /// Immutable after init; owned by the experiment's `Storage`.
    private let base: UnsafeRawPointer

    /// Owns the memory `AssignmentWireFields` points into.
    final class Storage: @unchecked Sendable {  // immutable after make
        fileprivate let pointer: UnsafeMutableRawPointer
        fileprivate init(byteCount: Int) {
            pointer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
        }
        deinit { pointer.deallocate() }
    }

    /// The table: the variation count, then an (offset, count) pair of
    /// `Int32`s per span: the key, the hash attribute, the fallback
    /// attribute, then per variation its fields and its value.
    private static let headerSize = 4

    static func make(_ experiment: Experiment, hashAttribute: String) -> (AssignmentWireFields, Storage) {
        var parts: [[UInt8]] = []
        var key: [UInt8] = []
        ProtobufWire.stringField(1, experiment.key, to: &key)  // experiment_key
        var primary: [UInt8] = [], fallback: [UInt8] = []
        ProtobufWire.stringField(5, hashAttribute, to: &primary)  // hash_attribute
        ProtobufWire.stringField(5, experiment.fallbackAttribute, to: &fallback)
        parts += [key, primary, fallback]
        for (index, variation) in experiment.variations.enumerated() {
            var fields: [UInt8] = []
            ProtobufWire.stringField(2, variation.key, to: &fields)  // variation_key
            if index != 0 { ProtobufWire.varintField(3, UInt64(index), to: &fields) }  // variation_index
            var value: [UInt8] = []
            if variation.hasValue, let encoded: [UInt8] = try? variation.value.serializedBytes() {
                ProtobufWire.bytesField(9, encoded, to: &value)  // value
            }
            parts += [fields, value]
        }
        let tableSize = headerSize + 8 * parts.count
        let storage = Storage(byteCount: tableSize + parts.reduce(0) { $0 + $1.count })
        storage.pointer.storeBytes(of: Int32(experiment.variations.count), as: Int32.self)
        var offset = tableSize
        for (index, part) in parts.enumerated() {
            storage.pointer.storeBytes(of: Int32(offset), toByteOffset: headerSize + 8 * index, as: Int32.self)
            storage.pointer.storeBytes(of: Int32(part.count), toByteOffset: headerSize + 8 * index + 4, as: Int32.self)
            part.withUnsafeBytes { (storage.pointer + offset).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(storage.pointer), byteCount: part.count) }
            offset += part.count
        }
        return (AssignmentWireFields(base: UnsafeRawPointer(storage.pointer)), storage)
    }

    private init(base: UnsafeRawPointer) { self.base = base }

    var variationCount: Int { Int(base.load(as: Int32.self)) }

    @inline(__always) private func span(_ index: Int) -> UnsafeRawBufferPointer {
        let entry = Self.headerSize + 8 * index
        let offset = Int(base.load(fromByteOffset: entry, as: Int32.self))
        return UnsafeRawBufferPointer(start: base + offset, count: Int(base.load(fromByteOffset: entry + 4, as: Int32.self)))
    }

    /// Field 1, experiment_key.
    var key: UnsafeRawBufferPointer { span(0) }
    /// Field 5, hash_attribute: the hash attribute or the fallback.
    func hashAttribute(isFallback: Bool) -> UnsafeRawBufferPointer { span(isFallback ? 2 : 1) }
    /// Fields 2 and 3, variation_key and variation_index.
    func variation(_ index: Int) -> UnsafeRawBufferPointer { span(3 + 2 * index) }
    /// Field 9, value (empty when the variation has none).
    func value(_ index: Int) -> UnsafeRawBufferPointer { span(4 + 2 * index) }
}

/// `GetAssignmentsResponse.assignments` written straight to protobuf bytes
/// from assignment decisions. Building an `Assignment` message per
/// experiment and encoding it cost as much as deciding the assignment
/// itself; here the experiment's fixed fields are copied from bytes
/// prepared at load, each unit's `hash_value` field is encoded once per
/// call, and all assignments are sized first, then written in one
/// reservation of the buffer the response is framed in
/// (`ServerContext.appendEncodedResponseFields`): on the wire it is the
/// same repeated field 1, and nothing is copied again before nghttp2.
public enum AssignmentsEncoder {
    /// The encoded `GetAssignmentsResponse.assignments` of `decisions`
    /// (one per experiment, in order); `units` are the decisions' hashed
    /// units (`UnitLookups.units`).
    public static func encode(_ decisions: UnsafeBufferPointer<AssignableExperiment.Decision>, of experiments: [AssignableExperiment],
                              units: [AssignableExperiment.HashedUnit]) -> ByteBuffer {
        precondition(decisions.count == experiments.count, "AssignmentsEncoder: one decision per experiment")
        // Field 6, hash_value, of each unit: the same bytes in every assignment that hashed it.
        let unitFields = units.map { unit -> UnitField in
            var field: [UInt8] = []
            if !unit.value.isEmpty { ProtobufWire.stringField(6, unit.value, to: &field) }  // proto3 leaves an empty string out
            return UnitField(hashValue: field, isFallback: unit.isFallback)
        }
        var total = 0
        for (decision, experiment) in zip(decisions, experiments) {
            let size = fieldsSize(decision, experiment.wire, unitFields: unitFields)
            total += 1 + ProtobufWire.varintSize(UInt64(size)) + size
        }
        var buffer = ServerContext.encodedFieldsBuffer(capacity: total)
        guard total > 0 else { return buffer }  // no experiment selected
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { raw in
            var writer = ProtobufWire.Writer(UnsafeMutableBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: total))
            for (decision, experiment) in zip(decisions, experiments) {
                write(decision, experiment.wire, unitFields: unitFields, to: &writer)
            }
            precondition(writer.count == total, "AssignmentsEncoder: size computed \(total), wrote \(writer.count)")
            return total
        }
        return buffer
    }

    private struct UnitField {
        var hashValue: [UInt8]
        var isFallback: Bool
    }

    /// The size of one Assignment's fields; `write` works it out again for
    /// the length prefix rather than keep a second array per call.
    @inline(__always)
    private static func fieldsSize(_ decision: AssignableExperiment.Decision, _ wire: AssignmentWireFields, unitFields: [UnitField]) -> Int {
        var size = wire.key.count
        if decision.index < wire.variationCount { size += wire.variation(decision.index).count + wire.value(decision.index).count }
        if decision.inExperiment { size += 2 }
        if let unit = decision.unitIndex {
            size += wire.hashAttribute(isFallback: unitFields[unit].isFallback).count + unitFields[unit].hashValue.count
        }
        if decision.bucket != nil { size += 9 }
        if decision.reason.rawValue != 0 { size += 1 + ProtobufWire.varintSize(UInt64(decision.reason.rawValue)) }
        if decision.sticky { size += 2 }
        return size
    }

    /// One Assignment, fields in number order as SwiftProtobuf writes them.
    @inline(__always)
    private static func write(_ decision: AssignableExperiment.Decision, _ wire: AssignmentWireFields, unitFields: [UnitField],
                              to writer: inout ProtobufWire.Writer) {
        let variation = decision.index < wire.variationCount ? decision.index : -1
        writer.byte(0x0A)  // GetAssignmentsResponse.assignments = 1
        writer.varint(UInt64(fieldsSize(decision, wire, unitFields: unitFields)))
        writer.bytes(wire.key)
        if variation >= 0 { writer.bytes(wire.variation(variation)) }
        if decision.inExperiment { writer.byte(4 << 3); writer.byte(1) }
        if let unit = decision.unitIndex {
            writer.bytes(wire.hashAttribute(isFallback: unitFields[unit].isFallback))
            unitFields[unit].hashValue.withUnsafeBytes { writer.bytes($0) }
        }
        if let bucket = decision.bucket {
            writer.byte(7 << 3 | 1)
            writer.fixed64(bucket.bitPattern)
        }
        if decision.reason.rawValue != 0 {
            writer.byte(8 << 3)
            writer.varint(UInt64(decision.reason.rawValue))
        }
        if variation >= 0 { writer.bytes(wire.value(variation)) }
        if decision.sticky { writer.byte(10 << 3); writer.byte(1) }
    }
}
