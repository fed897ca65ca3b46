import Foundation

/// Picks the version that answers a request that names none: by the
/// model's `routing` weights, sticky on the request's `routing_key` (the
/// same key always lands on the same version while the weights stay), or
/// the latest ready version when the model has no routing.
enum VersionRouter {
    static func choose(_ model: ModelRepository.ServingModel, routingKey: String?) -> ServedVersion? {
        let routes = model.definition.routes.filter { $0.weight > 0 && model.versions[$0.version] != nil }
        guard !routes.isEmpty else { return model.latest }
        let total = routes.reduce(0) { $0 + $1.weight }
        var point = if let routingKey { Int(stableHash(routingKey + "/" + model.definition.name) % UInt64(total)) }
                    else { Int.random(in: 0..<total) }
        for route in routes {
            if point < route.weight { return model.versions[route.version] }
            point -= route.weight
        }
        return model.latest
    }

    /// FNV-1a 64: stable across processes and releases, unlike `Hasher`.
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
