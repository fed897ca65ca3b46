/// Takes the first `count` of a best-first list while letting at most
/// `maxPerCategory` of one category in; items over their category's quota
/// follow, in order, only when too few others remain. Uncategorised items
/// are never limited.
func diversify<Item>(_ ranked: [Item], count: Int, maxPerCategory: Int, category: (Item) -> String) -> [Item] {
    guard maxPerCategory > 0 else { return Array(ranked.prefix(count)) }
    var chosen: [Item] = []
    var deferred: [Item] = []
    var perCategory: [String: Int] = [:]
    chosen.reserveCapacity(count)
    for item in ranked {
        if chosen.count == count { break }
        let key = category(item)
        if key.isEmpty {
            chosen.append(item)
            continue
        }
        let taken = perCategory[key, default: 0]
        if taken < maxPerCategory {
            perCategory[key] = taken + 1
            chosen.append(item)
        } else {
            deferred.append(item)
        }
    }
    if chosen.count < count { chosen.append(contentsOf: deferred.prefix(count - chosen.count)) }
    return chosen
}
