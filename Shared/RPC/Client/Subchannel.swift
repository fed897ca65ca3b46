import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The connection to one server address: connects lazily, reconnects with
/// exponential backoff, and hands out the ready connection to calls.
final class Subchannel: Sendable {
    struct Handle: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<ClientConnectionHandler>
        var eventLoop: any EventLoop { channel.eventLoop }
    }

    private enum State {
        case idle
        case connecting(EventLoopFuture<Handle>)
        case ready(Handle)
        /// The last attempt failed; the next one may start at `retryAt`.
        case backingOff(retryAt: NIODeadline, attempt: Int, lastError: String)
        case shutdown
    }

    let host: String
    let port: Int
    private let configuration: RPCChannel.Configuration
    private let group: any EventLoopGroup
    private let state = Mutex<State>(.idle)
    private let failures = Atomic<Int>(0)

    init(host: String, port: Int, configuration: RPCChannel.Configuration, group: any EventLoopGroup) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.group = group
    }

    var authority: String { host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether a call could go out now without waiting.
    var isReady: Bool {
        state.withLock { if case .ready = $0 { true } else { false } }
    }

    /// A ready connection. Fails with UNAVAILABLE while the server is
    /// unreachable, unless `waitForReady`, which keeps trying until `deadline`.
    func connection(waitForReady: Bool, deadline: NIODeadline?) async throws -> Handle {
        while true {
            let next: Either = state.withLock { state in
                switch state {
                case .ready(let handle):
                    return .ready(handle)
                case .connecting(let future):
                    return .wait(future)
                case .idle:
                    let future = startConnect()
                    state = .connecting(future)
                    return .wait(future)
                case .backingOff(let retryAt, _, let lastError):
                    if retryAt <= .now() {
                        let future = startConnect()
                        state = .connecting(future)
                        return .wait(future)
                    }
                    return .backoff(retryAt, lastError)
                case .shutdown:
                    return .closed
                }
            }
            switch next {
            case .ready(let handle):
                return handle
            case .wait(let future):
                do {
                    return try await future.get()
                } catch {
                    if !waitForReady {
                        throw RPCError(.unavailable, "cannot connect to \(authority): \(error)")
                    }
                }
            case .backoff(let retryAt, let lastError):
                guard waitForReady else {
                    throw RPCError(.unavailable, "cannot connect to \(authority): \(lastError)")
                }
                let wakeAt = deadline.map { min($0, retryAt) } ?? retryAt
                if let deadline, deadline <= .now() {
                    throw RPCError(.deadlineExceeded, "deadline exceeded while waiting for \(authority)")
                }
                try await Task.sleep(for: .nanoseconds(max(0, (wakeAt - .now()).nanoseconds)))
            case .closed:
                throw RPCError(.unavailable, "channel is closed")
            }
        }
    }

    private enum Either {
        case ready(Handle)
        case wait(EventLoopFuture<Handle>)
        case backoff(NIODeadline, String)
        case closed
    }

    /// Must be called with the state lock held.
    private func startConnect() -> EventLoopFuture<Handle> {
        let settings = configuration.http2Settings
        let authority = self.authority
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ClientConnectionHandler(authority: authority, settings: settings) { [weak self] in
                        self?.connectionClosed(channel)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let future = bootstrap.connect(host: host, port: port).flatMapThrowing { channel in
            let handler = try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
            return Handle(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }
        future.whenComplete { [weak self] result in
            self?.connectFinished(result)
        }
        return future
    }

    private func connectFinished(_ result: Result<Handle, any Error>) {
        let closeNow: (any Channel)? = state.withLock { state in
            switch result {
            case .success(let handle):
                if case .shutdown = state { return handle.channel }
                state = .ready(handle)
                failures.store(0, ordering: .relaxed)
                return nil
            case .failure(let error):
                if case .shutdown = state { return nil }
                let attempt = failures.add(1, ordering: .relaxed).newValue
                state = .backingOff(retryAt: .now() + backoff(attempt: attempt), attempt: attempt, lastError: "\(error)")
                return nil
            }
        }
        closeNow?.close(promise: nil)
    }

    /// gRPC connection backoff: 1 s initial, ×1.6, ±20 % jitter, 120 s cap
    /// (scaled down by the configuration for tests and local use).
    private func backoff(attempt: Int) -> TimeAmount {
        let base = Double(configuration.initialReconnectBackoff.nanoseconds)
        let capped = min(base * pow(1.6, Double(attempt - 1)), Double(configuration.maxReconnectBackoff.nanoseconds))
        let jittered = capped * Double.random(in: 0.8...1.2)
        return .nanoseconds(Int64(jittered))
    }

    private func connectionClosed(_ channel: any Channel) {
        state.withLock { state in
            if case .ready(let handle) = state, handle.channel === channel {
                state = .idle
            }
        }
    }

    func shutdown() async {
        let toClose: Handle? = state.withLock { state in
            defer { state = .shutdown }
            if case .ready(let handle) = state { return handle }
            return nil
        }
        if let toClose {
            let bound = toClose.handler
            toClose.eventLoop.execute { bound.value.close() }
            try? await toClose.channel.closeFuture.get()
        }
    }
}

import Foundation
