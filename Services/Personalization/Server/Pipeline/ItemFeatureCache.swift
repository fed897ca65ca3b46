import ServiceKit
import Synchronization

/// Model input rows of items, per tenant, reused for `timeToLive` and
/// dropped when the tenant's catalog generation moves (the feature store
/// derives these features from the catalog). One lock per request, not one
/// per item: a request reads or writes hundreds of rows at once.
final class ItemFeatureCache: Sendable {
    private struct Table {
        var generation: UInt64
        var rows: [String: (row: [Float], expires: ContinuousClock.Instant)] = [:]
    }

    let timeToLive: Duration
    let capacity: Int
    private let tables = Mutex<[TenantID: Table]>([:])

    init(timeToLive: Duration, capacity: Int) {
        self.timeToLive = timeToLive
        self.capacity = capacity
    }

    /// The cached row of each item, nil where there is none.
    func rows(_ ids: [String], tenant: TenantID, generation: UInt64) -> [[Float]?] {
        let now = ContinuousClock.now
        return tables.withLock { tables in
            guard let table = tables[tenant], table.generation == generation else { return Array(repeating: nil, count: ids.count) }
            return ids.map { id in table.rows[id].flatMap { $0.expires > now ? $0.row : nil } }
        }
    }

    func store(_ rows: [(id: String, row: [Float])], tenant: TenantID, generation: UInt64) {
        let expires = ContinuousClock.now + timeToLive
        tables.withLock { tables in
            var table = tables.removeValue(forKey: tenant) ?? Table(generation: generation)
            if table.generation != generation || table.rows.count + rows.count > capacity { table = Table(generation: generation) }
            for (id, row) in rows { table.rows[id] = (row, expires) }
            tables[tenant] = table
        }
    }
}
