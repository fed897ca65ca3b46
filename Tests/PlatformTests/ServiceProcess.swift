import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A shipped executable (`.build/debug/<name>`, or `MERIDIAN_BIN_DIR`) run
/// as its own process on a free loopback port, for tests that kill it.
final class ServiceProcess: @unchecked Sendable {  // Process is thread-safe for what is used here
    let process = Process()
    let port: Int
    /// The admin HTTP port (/healthz, /readyz, /metrics), when asked for.
    let adminPort: Int?

    init(_ name: String, arguments: [String], admin: Bool = false) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let bin = ProcessInfo.processInfo.environment["MERIDIAN_BIN_DIR"].map { URL(fileURLWithPath: $0) }
            ?? root.appendingPathComponent(".build/debug")
        port = try Self.freePort()
        adminPort = admin ? try Self.freePort() : nil
        process.executableURL = bin.appendingPathComponent(name)
        process.arguments = ["--port", "\(port)", "--admin-port", "\(adminPort ?? 0)", "--host", "127.0.0.1", "--log-level", "warning"] + arguments
        try process.run()
    }

    /// SIGKILL: no shutdown hook, no flush, no goodbye.
    func killNine() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    /// A port nobody listens on: bind to 0, read it back, release it.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ConformanceError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
