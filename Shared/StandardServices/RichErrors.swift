import Foundation
import MeridianRPC
import StandardProtos
import SwiftProtobuf

/// One invalid request field, for `RPCError.invalidArgument(violations:)`.
public struct FieldViolation: Sendable, Hashable {
    public var field: String
    public var description: String
    public var reason: String

    public init(_ field: String, _ description: String, reason: String = "INVALID") {
        self.field = field
        self.description = description
        self.reason = reason
    }
}

/// The error domain of every Meridian service, in `google.rpc.ErrorInfo`.
public let meridianErrorDomain = "meridian.platform"

extension RPCError {
    /// INVALID_ARGUMENT naming every bad field, in the message and as a
    /// `google.rpc.BadRequest` detail.
    public static func invalidArgument(violations: [FieldViolation]) -> RPCError {
        let message = violations.map { "\($0.field): \($0.description)" }.joined(separator: "; ")
        let badRequest = Google_Rpc_BadRequest.with {
            $0.fieldViolations = violations.map { violation in
                .with {
                    $0.field = violation.field
                    $0.description_p = violation.description
                    $0.reason = violation.reason
                }
            }
        }
        return rich(.invalidArgument, message, reason: "INVALID_ARGUMENT", details: [badRequest])
    }

    /// An error with an `ErrorInfo` (domain meridian.platform, `reason`,
    /// `metadata`) and any other standard details.
    public static func rich(
        _ code: RPCStatus.Code, _ message: String, reason: String,
        metadata: [String: String] = [:], details: [any SwiftProtobuf.Message] = []
    ) -> RPCError {
        let info = Google_Rpc_ErrorInfo.with {
            $0.reason = reason
            $0.domain = meridianErrorDomain
            $0.metadata = metadata
        }
        let status = Google_Rpc_Status.with {
            $0.code = Int32(code.rawValue)
            $0.message = message
            $0.details = ([info] + details).compactMap { try? Google_Protobuf_Any(message: $0) }
        }
        return RPCError(code, message, details: try? status.serializedBytes())
    }
}

extension RPCStatus {
    /// The `google.rpc.Status` in the details, if the server sent one.
    public var richStatus: Google_Rpc_Status? {
        details.flatMap { try? Google_Rpc_Status(serializedBytes: $0) }
    }

    /// The fields a `BadRequest` detail names, if any.
    public var fieldViolations: [Google_Rpc_BadRequest.FieldViolation] {
        richStatus?.details.compactMap { try? Google_Rpc_BadRequest(unpackingAny: $0) }.flatMap(\.fieldViolations) ?? []
    }

    /// The `ErrorInfo` reason, if any.
    public var errorReason: String? {
        richStatus?.details.lazy.compactMap { try? Google_Rpc_ErrorInfo(unpackingAny: $0) }.first?.reason
    }
}
