import Foundation
import MeridianRPC
import StandardProtos
import SwiftProtobuf

/// gRPC server reflection (`grpc.reflection.v1` and the older `v1alpha` that
/// many tools still call): lists the hosted services and serves the
/// descriptors of their proto files, so grpcurl and friends work without
/// the .proto files at hand.
public struct ReflectionService: Grpc_Reflection_V1_ServerReflectionHandler {
    let index: DescriptorIndex

    /// - Parameter services: the services the server hosts (reflection
    ///   itself and health are added to the list of names).
    public init(services: [any RPCService]) {
        index = DescriptorIndex(services: services)
    }

    /// The same service under `grpc.reflection.v1alpha`.
    public var v1alpha: V1Alpha { V1Alpha(index: index) }

    public func serverReflectionInfo(
        requests: RPCRequestStream<Grpc_Reflection_V1_ServerReflectionRequest>,
        responses: RPCResponseWriter<Grpc_Reflection_V1_ServerReflectionResponse>,
        context: ServerContext
    ) async throws {
        for try await request in requests {
            try await responses.write(index.answer(request))
        }
    }

    /// v1alpha's messages are wire-identical to v1's, so requests and answers
    /// convert through their encoding.
    public struct V1Alpha: Grpc_Reflection_V1alpha_ServerReflectionHandler {
        let index: DescriptorIndex

        public func serverReflectionInfo(
            requests: RPCRequestStream<Grpc_Reflection_V1alpha_ServerReflectionRequest>,
            responses: RPCResponseWriter<Grpc_Reflection_V1alpha_ServerReflectionResponse>,
            context: ServerContext
        ) async throws {
            for try await request in requests {
                let v1 = try Grpc_Reflection_V1_ServerReflectionRequest(serializedBytes: request.serializedBytes() as [UInt8])
                let answer = index.answer(v1)
                try await responses.write(Grpc_Reflection_V1alpha_ServerReflectionResponse(serializedBytes: answer.serializedBytes() as [UInt8]))
            }
        }
    }
}

/// Every file descriptor the hosted services carry, indexed by file name and
/// by the fully-qualified symbols they define.
struct DescriptorIndex: Sendable {
    private var files: [String: Google_Protobuf_FileDescriptorProto] = [:]
    private var encoded: [String: Data] = [:]
    private var fileBySymbol: [String: String] = [:]
    private var fileByExtension: [String: [Int32: String]] = [:]
    private(set) var serviceNames: [String] = []

    init(services: [any RPCService]) {
        // Reflection describes itself too, as grpcurl expects.
        var names: Set<String> = [Grpc_Reflection_V1_ServerReflection.name, Grpc_Reflection_V1alpha_ServerReflection.name]
        var descriptors = Grpc_Reflection_V1_ServerReflection.fileDescriptors + Grpc_Reflection_V1alpha_ServerReflection.fileDescriptors
        for service in services {
            for method in service.methods {
                let path = method.path.dropFirst()
                if let slash = path.firstIndex(of: "/") { names.insert(String(path[..<slash])) }
            }
            descriptors += service.fileDescriptors
        }
        for base64 in descriptors {
            guard let data = Data(base64Encoded: base64),
                  let file = try? Google_Protobuf_FileDescriptorProto(serializedBytes: data),
                  files[file.name] == nil
            else { continue }
            files[file.name] = file
            encoded[file.name] = data
            indexSymbols(of: file)
        }
        serviceNames = names.sorted()
    }

    private mutating func indexSymbols(of file: Google_Protobuf_FileDescriptorProto) {
        let prefix = file.package.isEmpty ? "" : file.package + "."
        func addMessage(_ message: Google_Protobuf_DescriptorProto, scope: String) {
            let name = scope + message.name
            fileBySymbol[name] = file.name
            for field in message.field { fileBySymbol[name + "." + field.name] = file.name }
            for nested in message.nestedType { addMessage(nested, scope: name + ".") }
            for nested in message.enumType { fileBySymbol[name + "." + nested.name] = file.name }
            for ext in message.extension { addExtension(ext) }
        }
        func addExtension(_ ext: Google_Protobuf_FieldDescriptorProto) {
            let extendee = ext.extendee.hasPrefix(".") ? String(ext.extendee.dropFirst()) : ext.extendee
            fileByExtension[extendee, default: [:]][ext.number] = file.name
        }
        for message in file.messageType { addMessage(message, scope: prefix) }
        for enumType in file.enumType {
            fileBySymbol[prefix + enumType.name] = file.name
            for value in enumType.value { fileBySymbol[prefix + value.name] = file.name }
        }
        for service in file.service {
            fileBySymbol[prefix + service.name] = file.name
            for method in service.method { fileBySymbol[prefix + service.name + "." + method.name] = file.name }
        }
        for ext in file.extension { addExtension(ext) }
    }

    /// A file and everything it imports, transitively, dependencies first.
    private func closure(of name: String) -> [Data] {
        var ordered: [String] = []
        var seen = Set<String>()
        func visit(_ name: String) {
            guard !seen.contains(name), let file = files[name] else { return }
            seen.insert(name)
            for dependency in file.dependency { visit(dependency) }
            ordered.append(name)
        }
        visit(name)
        // The requested file first: clients take the first as the answer.
        return (ordered.reversed()).compactMap { encoded[$0] }
    }

    func answer(_ request: Grpc_Reflection_V1_ServerReflectionRequest) -> Grpc_Reflection_V1_ServerReflectionResponse {
        var response = Grpc_Reflection_V1_ServerReflectionResponse()
        response.validHost = request.host
        response.originalRequest = request
        func notFound(_ message: String) {
            response.errorResponse = .with {
                $0.errorCode = Int32(RPCStatus.Code.notFound.rawValue)
                $0.errorMessage = message
            }
        }
        func files(_ name: String) {
            response.fileDescriptorResponse = .with { $0.fileDescriptorProto = closure(of: name) }
        }
        switch request.messageRequest {
        case .listServices:
            response.listServicesResponse = .with {
                $0.service = serviceNames.map { name in .with { $0.name = name } }
            }
        case .fileByFilename(let name):
            if self.files[name] != nil { files(name) } else { notFound("file \(name) not found") }
        case .fileContainingSymbol(let symbol):
            if let name = fileBySymbol[symbol] { files(name) } else { notFound("symbol \(symbol) not found") }
        case .fileContainingExtension(let ext):
            if let name = fileByExtension[ext.containingType]?[ext.extensionNumber] {
                files(name)
            } else {
                notFound("extension \(ext.extensionNumber) of \(ext.containingType) not found")
            }
        case .allExtensionNumbersOfType(let type):
            if fileBySymbol[type] != nil {
                response.allExtensionNumbersResponse = .with {
                    $0.baseTypeName = type
                    $0.extensionNumber = (fileByExtension[type] ?? [:]).keys.sorted()
                }
            } else {
                notFound("type \(type) not found")
            }
        case .none:
            response.errorResponse = .with {
                $0.errorCode = Int32(RPCStatus.Code.invalidArgument.rawValue)
                $0.errorMessage = "message_request is not set"
            }
        }
        return response
    }
}
