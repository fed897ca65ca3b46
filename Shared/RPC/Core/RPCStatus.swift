import Foundation

/// A gRPC status: the outcome of every RPC, carried in the `grpc-status`,
/// `grpc-message` and `grpc-status-details-bin` trailers.
public struct RPCStatus: Sendable, Hashable, CustomStringConvertible {
    /// The canonical gRPC status codes.
    public enum Code: Int, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case ok = 0
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case alreadyExists = 6
        case permissionDenied = 7
        case resourceExhausted = 8
        case failedPrecondition = 9
        case aborted = 10
        case outOfRange = 11
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
        case dataLoss = 15
        case unauthenticated = 16

        public var description: String {
            switch self {
            case .ok: "OK"
            case .cancelled: "CANCELLED"
            case .unknown: "UNKNOWN"
            case .invalidArgument: "INVALID_ARGUMENT"
            case .deadlineExceeded: "DEADLINE_EXCEEDED"
            case .notFound: "NOT_FOUND"
            case .alreadyExists: "ALREADY_EXISTS"
            case .permissionDenied: "PERMISSION_DENIED"
            case .resourceExhausted: "RESOURCE_EXHAUSTED"
            case .failedPrecondition: "FAILED_PRECONDITION"
            case .aborted: "ABORTED"
            case .outOfRange: "OUT_OF_RANGE"
            case .unimplemented: "UNIMPLEMENTED"
            case .internal: "INTERNAL"
            case .unavailable: "UNAVAILABLE"
            case .dataLoss: "DATA_LOSS"
            case .unauthenticated: "UNAUTHENTICATED"
            }
        }

        /// Unknown numeric codes map to UNKNOWN, as gRPC specifies.
        public init(wireValue: Int) {
            self = Code(rawValue: wireValue) ?? .unknown
        }
    }

    public var code: Code
    public var message: String
    /// A serialized `google.rpc.Status` with rich details, sent as
    /// `grpc-status-details-bin`. See `StandardServices.RichStatus`.
    public var details: Data?

    public init(_ code: Code, _ message: String = "", details: Data? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public static let ok = RPCStatus(.ok)

    public var description: String {
        message.isEmpty ? "\(code)" : "\(code): \(message)"
    }
}

/// The error type RPCs fail with, on both sides. Handlers throw it to choose
/// the status their caller sees; any other error becomes UNKNOWN without its
/// description (internals are never leaked to callers).
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    public var status: RPCStatus
    /// Trailing metadata that came with the error (client side), or that a
    /// handler wants to send with it (server side).
    public var trailers: Metadata

    public init(_ code: RPCStatus.Code, _ message: String, details: Data? = nil, trailers: Metadata = Metadata()) {
        self.status = RPCStatus(code, message, details: details)
        self.trailers = trailers
    }

    public init(status: RPCStatus, trailers: Metadata = Metadata()) {
        self.status = status
        self.trailers = trailers
    }

    public var code: RPCStatus.Code { status.code }
    public var message: String { status.message }
    public var description: String { "RPCError(\(status))" }

    public static func invalidArgument(_ message: String) -> RPCError { RPCError(.invalidArgument, message) }
    public static func notFound(_ message: String) -> RPCError { RPCError(.notFound, message) }
    public static func unimplemented(_ message: String) -> RPCError { RPCError(.unimplemented, message) }
    public static func internalError(_ message: String) -> RPCError { RPCError(.internal, message) }
}
