import CatalogServer
import ExperimentationServer
import FeatureStoreServer
import Foundation
import InferenceServer
import MeridianRPC
import PersonalizationServer
import ServiceKit
import StandardProtos
import Testing

/// Every service starts from the same `buildService` its executable runs,
/// and serves health and reflection on its gRPC port.
@Suite struct ServiceHostTests {
    typealias Builder = @Sendable (ServiceConfiguration) async throws -> ServiceHost

    static let builders: [(String, Builder)] = [
        ("catalog", { try await CatalogServer.buildService(configuration: $0) }),
        ("feature-store", { try await FeatureStoreServer.buildService(configuration: $0) }),
        ("inference", { try await InferenceServer.buildService(configuration: $0) }),
        ("experimentation", { try await ExperimentationServer.buildService(configuration: $0) }),
        ("personalization", { try await PersonalizationServer.buildService(configuration: $0) }),
    ]

    @Test(arguments: builders.map(\.0))
    func serviceServesHealthAndReflection(name: String) async throws {
        let builder = Self.builders.first { $0.0 == name }!.1
        var configuration = ServiceConfiguration.forTesting(name: name)
        configuration.adminPort = 0
        let host = try await builder(configuration)
        let port = try await host.start()
        let channel = try RPCChannel(host: "127.0.0.1", port: port)

        let health = Grpc_Health_V1_HealthClient(channel: channel)
        let overall = try await health.check(.with { $0.service = "" })
        #expect(overall.status == .serving)
        let unknown = await #expect(throws: RPCError.self) {
            _ = try await health.check(.with { $0.service = "no.such.Service" })
        }
        #expect(unknown?.code == .notFound)

        let reflection = Grpc_Reflection_V1_ServerReflectionClient(channel: channel)
        let services = try await reflection.serverReflectionInfo { requests, responses in
            try await requests.write(.with { $0.listServices = "" })
            requests.finish()
            var names: [String] = []
            for try await response in responses {
                names += response.listServicesResponse.service.map(\.name)
            }
            return names
        }
        #expect(services.contains("grpc.health.v1.Health"))
        #expect(services.contains("grpc.reflection.v1.ServerReflection"))

        // The admin endpoint answers liveness and readiness over HTTP.
        let adminPort = try #require(host.adminPort)
        #expect(try await httpGet(port: adminPort, path: "/healthz").status == 200)
        #expect(try await httpGet(port: adminPort, path: "/readyz").status == 200)

        // Shutdown turns health NOT_SERVING for watchers, then stops.
        await host.shutdown()
        await channel.close()
    }

    @Test func healthWatchSeesShutdown() async throws {
        let host = try await CatalogServer.buildService(configuration: .forTesting(name: "catalog"))
        let port = try await host.start()
        let channel = try RPCChannel(host: "127.0.0.1", port: port)
        let health = Grpc_Health_V1_HealthClient(channel: channel)
        let stream = health.watch(.with { $0.service = "" })
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next()?.status == .serving)
        host.health.setStatus(.notServing)
        #expect(try await iterator.next()?.status == .notServing)
        await host.shutdown()
        await channel.close()
    }

    @Test func configurationComesFromFlagsThenEnvironmentThenDefaults() throws {
        var options = try ServiceOptions.parse(["--port", "9000"])
        var configuration = try options.configuration(
            service: "feature-store", environment: ["FEATURE_STORE_PORT": "9100", "FEATURE_STORE_DATA_DIR": "/tmp/fs"])
        #expect(configuration.port == 9000)
        #expect(configuration.adminPort == 10000)
        #expect(configuration.dataDirectory == "/tmp/fs")
        options = try ServiceOptions.parse([])
        configuration = try options.configuration(service: "feature-store", environment: ["FEATURE_STORE_PORT": "9100"])
        #expect(configuration.port == 9100)
        configuration = try options.configuration(
            service: "personalization", dependencies: ["catalog": nil], environment: ["PERSONALIZATION_CATALOG_ADDRESS": "db:1"])
        #expect(configuration.port == 7105)
        #expect(configuration.dependencies["catalog"] == "db:1")
        #expect(throws: (any Error).self) {
            _ = try options.configuration(service: "catalog", environment: ["CATALOG_PORT": "seven"])
        }
    }
}

/// A minimal HTTP/1.0 GET over a socket, to check the admin endpoint the way
/// a probe would.
func httpGet(port: Int, path: String) async throws -> (status: Int, body: String) {
    try await Task.detached {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw RPCError(.unavailable, "cannot connect to admin port \(port)") }
        let request = Array("GET \(path) HTTP/1.0\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined()
        return (status, body)
    }.value
}
