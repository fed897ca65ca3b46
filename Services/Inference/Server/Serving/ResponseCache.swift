import Foundation
import Synchronization

/// Responses of models that opt in (`response_cache { enable: true }`),
/// keyed by model, version, requested outputs and the exact input bytes,
/// evicted least recently used first once their total size passes the limit.
/// A hit returns the bytes the model gave the first time.
final class ResponseCache: Sendable {
    struct Key: Hashable, Sendable {
        var model: String
        var version: Int64
        /// Which load of the version answered: a version reloaded from a
        /// changed artifact never serves its predecessor's answers.
        var instance: UInt64
        /// Every input's name, type, shape and bytes, and the outputs asked for, in order.
        var inputs: Data
    }

    private struct Entry {
        var key: Key
        var outputs: [Tensor]
        var cost: Int
        var newer: Int?
        var older: Int?
    }

    private struct State {
        var slots: [Entry?] = []
        var free: [Int] = []
        var index: [Key: Int] = [:]
        var newest: Int?
        var oldest: Int?
        var totalCost = 0
    }

    let capacityBytes: Int
    private let state = Mutex(State())

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
    }

    static func key(model: String, version: Int64, instance: UInt64, inputs: [Tensor], outputs: [String]) -> Key {
        var bytes = Data()
        func append(_ text: String) {
            bytes.append(contentsOf: Array(text.utf8))
            bytes.append(0)
        }
        for input in inputs {
            append(input.name)
            append(input.dataType.rawValue)
            append(input.shape.map(String.init).joined(separator: ","))
            var length = UInt64(input.raw.count)
            withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
            bytes.append(input.raw)
        }
        outputs.forEach(append)
        return Key(model: model, version: version, instance: instance, inputs: bytes)
    }

    func lookup(_ key: Key) -> [Tensor]? {
        state.withLock { state in
            guard let slot = state.index[key] else { return nil }
            Self.moveToFront(slot, in: &state)
            return state.slots[slot]!.outputs
        }
    }

    func store(_ key: Key, outputs: [Tensor]) {
        let cost = key.inputs.count + outputs.reduce(0) { $0 + $1.raw.count + 64 }
        guard cost <= capacityBytes else { return }
        state.withLock { state in
            if state.index[key] != nil { return }
            while state.totalCost + cost > capacityBytes, let oldest = state.oldest {
                Self.remove(oldest, in: &state)
            }
            let entry = Entry(key: key, outputs: outputs, cost: cost, newer: nil, older: state.newest)
            let slot: Int
            if let reused = state.free.popLast() {
                slot = reused
                state.slots[slot] = entry
            } else {
                slot = state.slots.count
                state.slots.append(entry)
            }
            if let newest = state.newest { state.slots[newest]!.newer = slot }
            state.newest = slot
            if state.oldest == nil { state.oldest = slot }
            state.index[key] = slot
            state.totalCost += cost
        }
    }

    /// Drops every entry of a model (its versions changed).
    func invalidate(model: String) {
        state.withLock { state in
            for (key, slot) in state.index where key.model == model { Self.remove(slot, in: &state) }
        }
    }

    var count: Int { state.withLock { $0.index.count } }

    private static func unlink(_ slot: Int, in state: inout State) {
        let entry = state.slots[slot]!
        if let newer = entry.newer { state.slots[newer]!.older = entry.older } else { state.newest = entry.older }
        if let older = entry.older { state.slots[older]!.newer = entry.newer } else { state.oldest = entry.newer }
    }

    private static func moveToFront(_ slot: Int, in state: inout State) {
        guard state.newest != slot else { return }
        unlink(slot, in: &state)
        state.slots[slot]!.older = state.newest
        state.slots[slot]!.newer = nil
        if let newest = state.newest { state.slots[newest]!.newer = slot }
        state.newest = slot
        if state.oldest == nil { state.oldest = slot }
    }

    private static func remove(_ slot: Int, in state: inout State) {
        unlink(slot, in: &state)
        let entry = state.slots[slot]!
        state.index[entry.key] = nil
        state.totalCost -= entry.cost
        state.slots[slot] = nil
        state.free.append(slot)
    }
}
