/// Maps `:path` to the method that serves it.
struct RPCRouter: Sendable {
    private var methods: [String: RPCServiceMethod] = [:]
    private var services: Set<Substring> = []

    init(services: [any RPCService]) {
        for service in services {
            for method in service.methods {
                precondition(methods[method.path] == nil, "method \(method.path) registered twice")
                methods[method.path] = method
                self.services.insert(Self.serviceName(of: method.path))
            }
        }
    }

    func method(for path: String) -> RPCServiceMethod? { methods[path] }

    /// The fully-qualified names of the services hosted.
    var serviceNames: [String] { services.map(String.init).sorted() }

    /// UNIMPLEMENTED, saying whether the service or only the method is unknown.
    func unimplementedStatus(for path: String) -> RPCStatus {
        let service = Self.serviceName(of: path)
        if services.contains(service) {
            return RPCStatus(.unimplemented, "method \(path) is not implemented by service \(service)")
        }
        return RPCStatus(.unimplemented, "service \(service) is not served here (path \(path))")
    }

    static func serviceName(of path: String) -> Substring {
        let trimmed = path.dropFirst()
        return trimmed.firstIndex(of: "/").map { trimmed[..<$0] } ?? trimmed
    }
}
