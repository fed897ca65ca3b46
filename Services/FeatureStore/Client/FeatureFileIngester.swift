import Contracts
import Crypto
import Foundation
import MeridianRPC
import SwiftProtobuf

/// Loads a CSV or JSON Lines file of feature rows into one feature view
/// through WriteFeatures, in batches, resumably.
///
/// - CSV: a header naming the view's join keys, any of its features, and
///   `event_time`; one row per line. Empty cells are null; list features
///   take a JSON array in the cell; bytes are base64.
/// - JSON Lines: one object per line with the same names; JSON types
///   (`"user_id": 42` is an int64 join key, `"user_id": "42"` a string one).
///
/// `event_time` is RFC 3339 or seconds since the epoch. Each batch carries a
/// request id derived from the file's digest and the batch's first line, and
/// a checkpoint file beside the input records the last acknowledged line, so
/// a run that failed halfway resumes where it stopped and a replayed batch
/// is answered from the service's idempotency record instead of written
/// twice.
public struct FeatureFileIngester: Sendable {
    public struct Summary: Sendable, CustomStringConvertible {
        public var lines = 0
        /// Lines skipped because a previous run already stored them.
        public var resumed = 0
        public var written = 0
        public var ignoredStale = 0
        /// Lines the service or the parser rejected.
        public var rejected = 0
        /// A few reasons, with line numbers.
        public var problems: [String] = []

        public var description: String {
            var text = "\(lines) lines: \(written) written, \(ignoredStale) older than stored, \(rejected) rejected"
            if resumed > 0 { text += ", \(resumed) already ingested by an earlier run" }
            for problem in problems.prefix(10) { text += "\n  \(problem)" }
            if problems.count > 10 { text += "\n  ... and \(problems.count - 10) more" }
            return text
        }
    }

    let client: Platform_Featurestore_V1_FeatureStoreServiceClient
    let tenant: String
    let viewName: String
    let batchSize: Int
    /// CSV join key cells that are integers become int64 keys.
    let integerKeys: Bool

    public init(channel: RPCChannel, tenant: String, view: String, batchSize: Int = 1000, integerKeys: Bool = false) {
        client = Platform_Featurestore_V1_FeatureStoreServiceClient(channel: channel)
        self.tenant = tenant
        viewName = view
        self.batchSize = max(1, min(batchSize, 10_000))
        self.integerKeys = integerKeys
    }

    var options: CallOptions {
        // Batches carry request ids, so retrying one the server may have
        // applied is safe; a restarting or busy server does not stop the run.
        var options = CallOptions(timeout: .seconds(120), waitForReady: true,
                                  retryPolicy: .some(RetryPolicy(maxAttempts: 4, initialBackoff: .milliseconds(200), maxBackoff: .seconds(2))))
        options.metadata.add("x-tenant-id", tenant)
        return options
    }

    /// Names the file's content in request ids and the checkpoint, so an
    /// edited file never resumes from, or replays, another's batches.
    public static func digest(of data: Data) -> String {
        SHA256.hash(data: data).prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// The checkpoint of `path`: `<path>.ingest-checkpoint`.
    public static func checkpointPath(for path: String) -> String { path + ".ingest-checkpoint" }

    /// Ingests `path`; `progress` gets (lines done, total lines) after each batch.
    public func ingest(path: String, progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> Summary {
        guard let data = FileManager.default.contents(atPath: path) else { throw RPCError(.notFound, "cannot read \(path)") }
        let digest = Self.digest(of: data)
        let view = try await client.getFeatureView(.with { $0.name = viewName }, options: options)
        let csv = !(path.hasSuffix(".jsonl") || path.hasSuffix(".json") || path.hasSuffix(".ndjson"))
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        let header: [String] = csv ? (lines.isEmpty ? [] : CSV.fields(String(lines.removeFirst()))) : []
        let firstLine = csv ? 2 : 1
        let numbered = lines.enumerated().map { (number: $0.offset + firstLine, text: String($0.element)) }
            .filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }

        var summary = Summary()
        summary.lines = numbered.count
        let checkpointFile = Self.checkpointPath(for: path)
        let done = Self.readCheckpoint(checkpointFile, digest: digest)
        let converter = RowConverter(view: view, integerKeys: integerKeys)
        var batch: [(number: Int, row: Platform_Featurestore_V1_FeatureRow)] = []
        var processed = 0

        func flush() async throws {
            guard !batch.isEmpty else { return }
            let response = try await client.writeFeatures(.with {
                $0.featureView = view.name
                $0.rows = batch.map(\.row)
                $0.requestID = "ingest-\(digest)-\(batch[0].number)"
            }, options: options)
            summary.written += Int(response.written)
            summary.ignoredStale += Int(response.ignoredStale)
            var rejectedLines = Set<Int>()
            for error in response.errors {
                let line = batch[Int(error.rowIndex)].number
                rejectedLines.insert(line)
                summary.problems.append("line \(line): \(error.field): \(error.reason)")
            }
            summary.rejected += rejectedLines.count
            try Self.writeCheckpoint(checkpointFile, digest: digest, line: batch.last!.number)
            batch.removeAll(keepingCapacity: true)
        }

        for (number, text) in numbered {
            processed += 1
            if number <= done { summary.resumed += 1; continue }
            do {
                let row = csv ? try converter.row(header: header, cells: CSV.fields(text)) : try converter.row(json: text)
                batch.append((number, row))
            } catch {
                summary.rejected += 1
                summary.problems.append("line \(number): \(error)")
            }
            if batch.count == batchSize {
                try await flush()
                progress(processed, numbered.count)
            }
        }
        try await flush()
        progress(numbered.count, numbered.count)
        try? FileManager.default.removeItem(atPath: checkpointFile)
        return summary
    }

    static func readCheckpoint(_ path: String, digest: String) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        let parts = text.split(separator: " ")
        guard parts.count == 2, parts[0] == digest, let line = Int(parts[1].trimmingCharacters(in: .whitespacesAndNewlines)) else { return 0 }
        return line
    }

    static func writeCheckpoint(_ path: String, digest: String, line: Int) throws {
        try "\(digest) \(line)\n".write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// Why a line could not become a row.
struct LineError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Turns CSV cells or JSON objects into FeatureRows, typed by the view.
struct RowConverter: Sendable {
    let view: Platform_Featurestore_V1_FeatureView
    let types: [String: Platform_Featurestore_V1_ValueType]
    let integerKeys: Bool

    init(view: Platform_Featurestore_V1_FeatureView, integerKeys: Bool) {
        self.view = view
        types = Dictionary(view.features.map { ($0.name, $0.type) }, uniquingKeysWith: { first, _ in first })
        self.integerKeys = integerKeys
    }

    func row(header: [String], cells: [String]) throws -> Platform_Featurestore_V1_FeatureRow {
        guard cells.count == header.count else { throw LineError("\(cells.count) cells for \(header.count) columns") }
        var row = Platform_Featurestore_V1_FeatureRow()
        for (name, cell) in zip(header, cells) {
            if name == "event_time" {
                row.eventTime = try timestamp(cell)
            } else if view.entities.contains(name) {
                row.entityKey[name] = integerKeys && Int64(cell) != nil ? .with { $0.int64Val = Int64(cell)! } : .with { $0.stringVal = cell }
            } else if let type = types[name] {
                if !cell.isEmpty { row.values[name] = try value(text: cell, type: type, column: name) }
            } else {
                throw LineError("column \(name) is neither a join key nor a feature of \(view.name)")
            }
        }
        return row
    }

    func row(json text: String) throws -> Platform_Featurestore_V1_FeatureRow {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { throw LineError("not a JSON object") }
        var row = Platform_Featurestore_V1_FeatureRow()
        for (name, item) in object {
            if name == "event_time" {
                if let seconds = item as? NSNumber, !Self.isBool(seconds) {
                    row.eventTime = Google_Protobuf_Timestamp(date: Date(timeIntervalSince1970: seconds.doubleValue))
                } else if let text = item as? String {
                    row.eventTime = try timestamp(text)
                } else {
                    throw LineError("event_time must be RFC 3339 text or epoch seconds")
                }
            } else if view.entities.contains(name) {
                if let text = item as? String { row.entityKey[name] = .with { $0.stringVal = text } }
                else if let number = item as? NSNumber, !Self.isBool(number), let integer = Int64(exactly: number.doubleValue) { row.entityKey[name] = .with { $0.int64Val = integer } }
                else { throw LineError("join key \(name) must be a string or an integer") }
            } else if let type = types[name] {
                if item is NSNull { continue }
                row.values[name] = try value(json: item, type: type, column: name)
            } else {
                throw LineError("\(name) is neither a join key nor a feature of \(view.name)")
            }
        }
        return row
    }

    private func timestamp(_ text: String) throws -> Google_Protobuf_Timestamp {
        if let seconds = Double(text) { return Google_Protobuf_Timestamp(date: Date(timeIntervalSince1970: seconds)) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text) { return Google_Protobuf_Timestamp(date: date) }
        throw LineError("event_time \"\(text)\" is neither RFC 3339 nor epoch seconds")
    }

    /// A CSV cell: scalars as text, lists as a JSON array.
    private func value(text: String, type: Platform_Featurestore_V1_ValueType, column: String) throws -> Platform_Featurestore_V1_Value {
        switch type {
        case .string: return .with { $0.stringVal = text }
        case .bytesList, .stringList, .int64List, .doubleList, .floatList, .boolList, .unixTimestampList:
            guard let array = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { throw LineError("\(column): a list is a JSON array") }
            return try value(json: array, type: type, column: column)
        case .int64: if let number = Int64(text) { return .with { $0.int64Val = number } }
        case .unixTimestamp: if let number = Int64(text) { return .with { $0.unixTimestampVal = number } }
        case .double: if let number = Double(text) { return .with { $0.doubleVal = number } }
        case .float: if let number = Float(text) { return .with { $0.floatVal = number } }
        case .bool:
            switch text.lowercased() {
            case "true", "1": return .with { $0.boolVal = true }
            case "false", "0": return .with { $0.boolVal = false }
            default: break
            }
        case .bytes: if let data = Data(base64Encoded: text) { return .with { $0.bytesVal = data } }
        default: break
        }
        throw LineError("\(column): \"\(text)\" is not a \(type)")
    }

    private func value(json item: Any, type: Platform_Featurestore_V1_ValueType, column: String) throws -> Platform_Featurestore_V1_Value {
        func fail() -> LineError { LineError("\(column): \(item) is not a \(type)") }
        func number() throws -> NSNumber {
            guard let number = item as? NSNumber, !Self.isBool(number) else { throw fail() }
            return number
        }
        func list<T>(_ convert: (Any) throws -> T) throws -> [T] {
            guard let array = item as? [Any] else { throw fail() }
            return try array.map(convert)
        }
        func integer(_ any: Any) throws -> Int64 {
            guard let number = any as? NSNumber, !Self.isBool(number), let value = Int64(exactly: number.doubleValue) else { throw fail() }
            return value
        }
        func real(_ any: Any) throws -> Double {
            guard let number = any as? NSNumber, !Self.isBool(number) else { throw fail() }
            return number.doubleValue
        }
        func boolean(_ any: Any) throws -> Bool {
            guard let number = any as? NSNumber, Self.isBool(number) else { throw fail() }
            return number.boolValue
        }
        func text(_ any: Any) throws -> String {
            guard let string = any as? String else { throw fail() }
            return string
        }
        func bytes(_ any: Any) throws -> Data {
            guard let string = any as? String, let data = Data(base64Encoded: string) else { throw fail() }
            return data
        }
        switch type {
        case .string: let value = try text(item); return .with { $0.stringVal = value }
        case .bytes: let value = try bytes(item); return .with { $0.bytesVal = value }
        case .int64: let value = try integer(try number()); return .with { $0.int64Val = value }
        case .unixTimestamp: let value = try integer(try number()); return .with { $0.unixTimestampVal = value }
        case .double: let value = try number().doubleValue; return .with { $0.doubleVal = value }
        case .float: let value = Float(try number().doubleValue); return .with { $0.floatVal = value }
        case .bool: let value = try boolean(item); return .with { $0.boolVal = value }
        case .stringList: let values = try list(text); return .with { $0.stringListVal.val = values }
        case .bytesList: let values = try list(bytes); return .with { $0.bytesListVal.val = values }
        case .int64List: let values = try list(integer); return .with { $0.int64ListVal.val = values }
        case .unixTimestampList: let values = try list(integer); return .with { $0.unixTimestampListVal.val = values }
        case .doubleList: let values = try list(real); return .with { $0.doubleListVal.val = values }
        case .floatList: let values = try list(real).map(Float.init); return .with { $0.floatListVal.val = values }
        case .boolList: let values = try list(boolean); return .with { $0.boolListVal.val = values }
        default: throw fail()
        }
    }

    /// JSONSerialization gives booleans as NSNumber too.
    static func isBool(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c" || type(of: number) == type(of: NSNumber(value: true))
    }
}

/// RFC 4180 fields of one line: commas, quotes, doubled quotes.
enum CSV {
    static func fields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var iterator = line.makeIterator()
        while let character = iterator.next() {
            if quoted {
                if character == "\"" {
                    // A doubled quote is a literal quote; a single one ends the quoted part.
                    var lookahead = iterator
                    if lookahead.next() == "\"" { current.append("\""); iterator = lookahead } else { quoted = false }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "," {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }
}
