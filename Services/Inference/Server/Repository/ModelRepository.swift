import Contracts
import Foundation
import Logging
import Synchronization

/// The model repository: Triton's folder layout on disk
/// (`<root>/<model>/config.pbtxt`, `<root>/<model>/<version>/<artifact>`)
/// and the versions loaded from it.
///
/// Loading is careful about what already serves: a new or changed version
/// is loaded and warmed before it is published, the versions it replaces are
/// retired only after that, and a version that fails to load is reported
/// (RepositoryIndex) without touching the others. Requests read the served
/// set without waiting on loads.
public actor ModelRepository {
    /// How models get loaded, as Triton's `--model-control-mode`.
    public enum ControlMode: String, Sendable, CaseIterable {
        /// Every model at start; the repository is fixed afterwards.
        case none
        /// Only the models named at start, then RepositoryModelLoad/Unload.
        case explicit
        /// Every model at start, then the folder is rescanned on an interval.
        case poll
    }

    public enum VersionState: Sendable, Equatable {
        case loading
        case ready
        case unavailable(String)

        var name: String {
            switch self {
            case .loading: "LOADING"
            case .ready: "READY"
            case .unavailable: "UNAVAILABLE"
            }
        }
    }

    /// What requests see: immutable snapshots swapped whole.
    struct ServingModel: Sendable {
        var definition: ModelDefinition
        var versions: [Int64: ServedVersion]
        var latest: ServedVersion? { versions.max { $0.key < $1.key }?.value }
    }

    /// What RepositoryIndex reports per model.
    struct Status: Sendable {
        var versions: [Int64: VersionState] = [:]
        /// A problem with the model as a whole (config, folder), if any.
        var problem: String?
        var configText: String?
    }

    public nonisolated let root: URL
    public nonisolated let mode: ControlMode
    private let logger: Logger
    private nonisolated let serving = Mutex<[String: ServingModel]>([:])
    private var statuses: [String: Status] = [:]

    public init(root: URL, mode: ControlMode, logger: Logger) {
        self.root = root
        self.mode = mode
        self.logger = logger
    }

    // MARK: Reading (no waiting on loads)

    nonisolated func servingModel(_ name: String) -> ServingModel? {
        serving.withLock { $0[name] }
    }

    nonisolated var servingModels: [String: ServingModel] {
        serving.withLock { $0 }
    }

    /// Model folders present on disk.
    nonisolated func modelFolders() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
        return entries.filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true && !$0.lastPathComponent.hasPrefix(".") }
            .map(\.lastPathComponent).sorted()
    }

    func index(readyOnly: Bool) -> [Inference_RepositoryIndexResponse.ModelIndex] {
        var models: [Inference_RepositoryIndexResponse.ModelIndex] = []
        for name in Set(modelFolders()).union(statuses.keys).sorted() {
            guard let status = statuses[name] else {
                if !readyOnly { models.append(.with { $0.name = name }) }
                continue
            }
            if status.versions.isEmpty, !readyOnly {
                models.append(.with {
                    $0.name = name
                    $0.state = "UNAVAILABLE"
                    $0.reason = status.problem ?? "unloaded"
                })
            }
            for (version, state) in status.versions.sorted(by: { $0.key < $1.key }) where !readyOnly || state == .ready {
                models.append(.with {
                    $0.name = name
                    $0.version = String(version)
                    $0.state = state.name
                    if case .unavailable(let reason) = state { $0.reason = reason }
                    else if let problem = status.problem { $0.reason = problem }
                })
            }
        }
        return models
    }

    // MARK: Loading

    /// Loads every model folder (modes none and poll at start, and each poll).
    public func loadAll() async {
        let folders = modelFolders()
        for name in folders { await load(name) }
        // Folders that disappeared are unloaded.
        for name in statuses.keys where !folders.contains(name) && servingModel(name) != nil {
            unload(name, reason: "model folder removed")
        }
    }

    /// Loads or reloads one model: new and changed versions are loaded and
    /// warmed, then published; versions no longer selected are retired.
    /// Returns the model-level problem, if the model could not be loaded at all.
    @discardableResult
    public func load(_ name: String) async -> String? {
        let folder = root.appendingPathComponent(name)
        var status = statuses[name] ?? Status()
        let configURL = folder.appendingPathComponent("config.pbtxt")
        guard let configText = try? String(contentsOf: configURL, encoding: .utf8) else {
            status.problem = FileManager.default.fileExists(atPath: folder.path) ? "config.pbtxt is missing or unreadable" : "no model folder '\(name)' in the repository"
            statuses[name] = status
            return status.problem
        }
        let definition: ModelDefinition
        do {
            definition = try ModelDefinition(configText: configText, folderName: name)
        } catch {
            // A broken config never takes down versions already serving.
            status.problem = error.description
            statuses[name] = status
            logger.error("model config rejected", metadata: ["model": "\(name)", "reason": "\(error)"])
            return status.problem
        }
        status.problem = nil
        let available = versionFolders(folder)
        let wanted: [Int64]
        switch definition.versionPolicy {
        case .latest(let count): wanted = Array(available.sorted(by: >).prefix(count))
        case .all: wanted = available
        case .specific(let versions): wanted = versions
        }
        if wanted.isEmpty { status.problem = "no version folders (numbered subfolders) to load" }

        let current = servingModel(name)
        let configChanged = status.configText != configText
        status.configText = configText
        var next: [Int64: ServedVersion] = [:]
        var states: [Int64: VersionState] = [:]
        for version in wanted.sorted() {
            let artifact = artifactURL(folder.appendingPathComponent(String(version)), definition: definition)
            let modified = artifact.flatMap { try? $0.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate }
            if let existing = current?.versions[version], !configChanged, existing.artifact == artifact, existing.artifactModified == modified {
                next[version] = existing
                states[version] = .ready
                continue
            }
            guard available.contains(version), let artifact else {
                states[version] = .unavailable(available.contains(version)
                    ? "no artifact in version folder \(version) (expected \(definition.defaultFilename))"
                    : "version folder \(version) does not exist")
                continue
            }
            statuses[name, default: status].versions[version] = .loading
            do {
                let served = try await Self.loadVersion(definition, version: version, artifact: artifact, modified: modified)
                next[version] = served
                states[version] = .ready
                logger.info("model version ready", metadata: ["model": "\(name)", "version": "\(version)", "artifact": "\(artifact.lastPathComponent)"])
            } catch {
                logger.error("model version failed to load", metadata: ["model": "\(name)", "version": "\(version)", "reason": "\(error)"])
                if let existing = current?.versions[version] {
                    // Keep the instance that serves; say why the new one did not replace it.
                    next[version] = existing
                    states[version] = .ready
                    status.problem = "version \(version) reload failed, previous instance still serving: \(error)"
                } else {
                    states[version] = .unavailable(error.description)
                }
            }
        }
        // A version that failed to load never shrinks what serves: the
        // versions it would have replaced keep serving until it loads.
        let failed = states.filter { if case .unavailable = $0.value { true } else { false } }.keys.sorted()
        if !failed.isEmpty, let current {
            for (version, served) in current.versions where next[version] == nil {
                next[version] = served
                states[version] = .ready
                status.problem = "version \(failed.map(String.init).joined(separator: ", ")) failed to load; version \(version) keeps serving"
            }
        }
        status.versions = states
        statuses[name] = status
        // Publish, then retire what the new set no longer holds.
        let retired = serving.withLock { models -> [ServedVersion] in
            let previous = models[name]?.versions ?? [:]
            models[name] = ServingModel(definition: next.isEmpty ? (current?.definition ?? definition) : definition, versions: next)
            if next.isEmpty { models[name] = nil }
            return previous.compactMap { version, served in next[version] === served ? nil : served }
        }
        for served in retired {
            served.retire()
            logger.info("model version retired", metadata: ["model": "\(name)", "version": "\(served.version)"])
        }
        return status.problem
    }

    /// Unloads every version of a model. Requests already running finish.
    public func unload(_ name: String, reason: String = "unloaded") {
        let retired = serving.withLock { $0.removeValue(forKey: name) }
        retired?.versions.values.forEach { $0.retire() }
        var status = statuses[name] ?? Status()
        status.versions = status.versions.mapValues { _ in .unavailable(reason) }
        status.problem = reason
        status.configText = nil
        statuses[name] = status
        logger.info("model unloaded", metadata: ["model": "\(name)"])
    }

    func isKnown(_ name: String) -> Bool {
        statuses[name] != nil || modelFolders().contains(name)
    }

    // MARK: Helpers

    private nonisolated func versionFolders(_ folder: URL) -> [Int64] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return entries.compactMap { entry in
            var isDirectory: ObjCBool = false
            guard let version = Int64(entry), version > 0,
                  FileManager.default.fileExists(atPath: folder.appendingPathComponent(entry).path, isDirectory: &isDirectory),
                  isDirectory.boolValue else { return nil }
            return version
        }.sorted()
    }

    /// The version's artifact: the config's default filename, else the one
    /// model file of a known kind in the folder.
    private nonisolated func artifactURL(_ versionFolder: URL, definition: ModelDefinition) -> URL? {
        let preferred = versionFolder.appendingPathComponent(definition.defaultFilename)
        if FileManager.default.fileExists(atPath: preferred.path) { return preferred }
        let extensions = definition.backend == .xgboost ? ["json", "ubj"] : ["onnx"]
        let candidates = ((try? FileManager.default.contentsOfDirectory(atPath: versionFolder.path)) ?? [])
            .filter { extensions.contains(($0 as NSString).pathExtension) }.sorted()
        return candidates.first.map { versionFolder.appendingPathComponent($0) }
    }

    /// Loads and warms a version off the async runtime's threads: artifacts
    /// can take a while to parse, and requests must keep flowing meanwhile.
    private static func loadVersion(_ definition: ModelDefinition, version: Int64, artifact: URL, modified: Date?) async throws(ModelLoadError) -> ServedVersion {
        let result: Result<ServedVersion, ModelLoadError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(ModelLoadError) -> ServedVersion in
                    let backend = try Backends.load(definition, artifact: artifact)
                    try Warmup.run(backend, definition: definition)
                    return ServedVersion(definition: definition, version: version, backend: backend, artifact: artifact, artifactModified: modified)
                })
            }
        }
        return try result.get()
    }
}
