import CoreMetrics

/// `rpc_server_limit_hits_total{limit}`: how often each bound of the server
/// was hit (a connection refused or ended, a call refused). Counters are
/// made once; the process's metrics backend (bootstrapped by executables)
/// decides where they go.
final class LimitMetrics: Sendable {
    private let counters: [LimitKind: Counter]

    init() {
        var counters: [LimitKind: Counter] = [:]
        for kind in LimitKind.allCases where kind != .drained {
            counters[kind] = Counter(label: "rpc_server_limit_hits_total", dimensions: [("limit", kind.rawValue)])
        }
        self.counters = counters
    }

    func hit(_ kind: LimitKind) {
        counters[kind]?.increment()
    }
}
