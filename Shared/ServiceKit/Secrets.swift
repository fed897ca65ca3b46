import Crypto
import Foundation
import MeridianRPC

/// A per-deployment signing secret (page tokens): from `environmentVariable`
/// when set (replicas sharing a database must set it alike), else a random
/// one created once in the data directory, so tokens survive restarts.
public func pageTokenSecret(directory: String, environmentVariable: String) throws -> Data {
    if let configured = ProcessInfo.processInfo.environment[environmentVariable], !configured.isEmpty {
        return Data(SHA256.hash(data: Data(configured.utf8)))
    }
    let path = (directory as NSString).appendingPathComponent("page-token.key")
    if let existing = FileManager.default.contents(atPath: path), existing.count == 32 { return existing }
    let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    guard FileManager.default.createFile(atPath: path, contents: secret, attributes: [.posixPermissions: 0o600]) else {
        throw RPCError(.internal, "cannot write \(path)")
    }
    return secret
}
