import Foundation
import GRDB

/// How the services open their SQLite files.
public enum SQLiteStorage {
    /// What an acknowledged write survives.
    public enum Durability: Sendable {
        /// A process crash (WAL with synchronous=NORMAL): for data the
        /// service can afford to lose on power loss.
        case processCrash
        /// Power loss too (synchronous=FULL): for logs that analyses rely on.
        case powerLoss
    }

    /// A WAL-mode pool on `path`, its directory created, waiting up to 5 s
    /// on a locked database.
    public static func openPool(path: String, durability: Durability) throws -> DatabasePool {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let synchronous = durability == .powerLoss ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        return try DatabasePool(path: path, configuration: configuration)
    }
}
