import CNGHTTP2
#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// What a data source gives nghttp2 when it asks for the next DATA frame.
enum DataReadResult {
    /// `count` bytes were copied; `endOfData` with optional trailers ends the
    /// body (trailers go out as a final HEADERS frame with END_STREAM).
    case bytes(count: Int, endOfData: Bool, trailers: [(String, String)]?)
    /// Nothing to send now; call `resumeData` when there is.
    case deferred
}

/// One header field as nghttp2 hands it over: bytes valid only during the
/// callback. Owners compare names in place and make strings only of what
/// they keep.
struct HTTP2HeaderField {
    let name: UnsafeBufferPointer<UInt8>
    let value: UnsafeBufferPointer<UInt8>

    var nameString: String { String(decoding: name, as: UTF8.self) }
    var valueString: String { String(decoding: value, as: UTF8.self) }

    /// The value as a string: `known` itself when the bytes are its UTF-8,
    /// so a value every call repeats (a path, a content type) shares one
    /// string instead of allocating its own.
    func valueString(reusing known: String) -> String {
        var known = known
        let same = known.withUTF8 { bytes in
            bytes.count == value.count && (bytes.count == 0 || memcmp(bytes.baseAddress!, value.baseAddress!, bytes.count) == 0)
        }
        return same ? known : valueString
    }

    func nameIs(_ text: StaticString) -> Bool {
        name.count == text.utf8CodeUnitCount && (name.count == 0 || memcmp(name.baseAddress!, text.utf8Start, name.count) == 0)
    }
}

/// The events an HTTP/2 connection's owner handles. All calls happen on the
/// channel's event loop, from inside `receive` or `send`.
protocol HTTP2SessionDelegate: AnyObject {
    func sessionBeginHeaders(streamID: Int32)
    /// One decoded header field. False resets the stream and skips the
    /// rest of its block unread (an owner that has seen enough).
    func sessionHeader(streamID: Int32, field: HTTP2HeaderField) -> Bool
    func sessionHeadersComplete(streamID: Int32, endStream: Bool)
    func sessionData(streamID: Int32, bytes: UnsafeRawBufferPointer)
    func sessionDataComplete(streamID: Int32, endStream: Bool)
    func sessionStreamClosed(streamID: Int32, errorCode: UInt32)
    func sessionGoAway(lastStreamID: Int32, errorCode: UInt32)
    func sessionReadData(streamID: Int32, into buffer: UnsafeMutableRawBufferPointer) -> DataReadResult
    /// A frame header arrived (only when the session was made with
    /// `watchesFrames`): the first frame, and every frame but DATA with a
    /// payload (the traffic itself). False ends the session (`receive` throws).
    func sessionBeginFrame(type: UInt8, flags: UInt8, streamID: Int32) -> Bool
}

extension HTTP2SessionDelegate {
    func sessionBeginFrame(type: UInt8, flags: UInt8, streamID: Int32) -> Bool { true }
}

struct HTTP2Error: Error, CustomStringConvertible {
    let code: Int
    let operation: String
    var description: String {
        "\(operation): \(String(cString: nghttp2_strerror(Int32(code))))"
    }
}

/// A thin owner of one `nghttp2_session` driven through the memory-based API:
/// bytes from the socket go into `receive`, bytes for the socket come out of
/// `send`. nghttp2 does the framing, HPACK, flow control and the protocol's
/// defences (header-list limits, reset and settings floods); we do the rest.
///
/// Not thread-safe: confined to the owning channel's event loop.
final class HTTP2Session {
    enum Role { case client, server }

    struct Settings {
        var maxConcurrentStreams: UInt32 = 100
        var initialWindowSize: UInt32 = 1 << 20
        var connectionWindowSize: Int32 = 16 << 20
        var maxHeaderListSize: UInt32 = 16 << 10
        var maxFrameSize: UInt32 = 16 << 10
    }

    private(set) var session: OpaquePointer!
    unowned(unsafe) let delegate: any HTTP2SessionDelegate
    /// Whether the first frame has begun (after the client preface, on a server).
    private var sawFirstFrame = false

    /// `watchesFrames`: report frame headers to `sessionBeginFrame` (the
    /// server counts them against its flood limits).
    init(role: Role, settings: Settings, delegate: any HTTP2SessionDelegate, watchesFrames: Bool = false) throws {
        self.delegate = delegate
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.installCallbacks(callbacks)
        if watchesFrames { Self.installFrameWatch(callbacks) }

        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        // Window updates follow what the application has read, not what
        // arrived: this is how backpressure reaches the peer.
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_max_send_header_block_length(option, 64 << 10)
        // Closed streams are kept only for priority, which gRPC does not use.
        nghttp2_option_set_no_closed_streams(option, 1)
        // Queued PING and SETTINGS acknowledgements a peer can make us hold
        // before the session fails as flooded (nghttp2's default, made explicit).
        nghttp2_option_set_max_outbound_ack(option, 1000)
        // Entries in one SETTINGS frame.
        nghttp2_option_set_max_settings(option, 32)
        if role == .client {
            // Peers advertise their own limit; until they do, assume gRPC's usual.
            nghttp2_option_set_peer_max_concurrent_streams(option, 100)
        }

        var created: OpaquePointer?
        let userData = Unmanaged.passUnretained(self).toOpaque()
        let rc = switch role {
        case .server: nghttp2_session_server_new2(&created, callbacks, userData, option)
        case .client: nghttp2_session_client_new2(&created, callbacks, userData, option)
        }
        guard rc == 0, let created else { throw HTTP2Error(code: Int(rc), operation: "session_new") }
        self.session = created

        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialWindowSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: settings.maxFrameSize),
        ]
        if role == .server {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams))
        } else {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        let settingsRC = nghttp2_submit_settings(created, UInt8(NGHTTP2_FLAG_NONE.rawValue), entries, entries.count)
        guard settingsRC == 0 else { throw HTTP2Error(code: Int(settingsRC), operation: "submit_settings") }
        nghttp2_session_set_local_window_size(created, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, settings.connectionWindowSize)
    }

    deinit {
        nghttp2_session_del(session)
    }

    /// Feeds bytes read from the socket. Throws on a protocol error, after
    /// which the connection must be closed (nghttp2 has queued a GOAWAY).
    func receive(_ buffer: ByteBuffer) throws {
        try buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            let rc = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
            if rc < 0 { throw HTTP2Error(code: rc, operation: "mem_recv") }
        }
    }

    /// Serializes every pending frame into `buffer`, stopping once it holds
    /// `limit` bytes; returns whether it stopped there with more to send.
    func send(into buffer: inout ByteBuffer, limit: Int) throws -> Bool {
        while buffer.readableBytes < limit {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &data)
            if n < 0 { throw HTTP2Error(code: n, operation: "mem_send") }
            guard n > 0, let data else { return false }
            buffer.writeBytes(UnsafeRawBufferPointer(start: data, count: n))
        }
        return wantsWrite
    }

    /// Serializes pending frames, up to about `limit` bytes, and writes them
    /// to the channel in one write; returns whether more is left to send.
    /// Closes the channel when nghttp2 fails (protocol error).
    @discardableResult
    func flush(to context: ChannelHandlerContext, limit: Int = .max) -> Bool {
        var buffer = context.channel.allocator.buffer(capacity: 4096)
        let more: Bool
        do {
            more = try send(into: &buffer, limit: limit)
        } catch {
            context.close(promise: nil)
            return false
        }
        if buffer.readableBytes > 0 {
            context.writeAndFlush(NIOAny(buffer), promise: nil)
        }
        return more
    }

    var wantsRead: Bool { nghttp2_session_want_read(session) != 0 }
    var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

    /// Server: response headers, with a body provider when `hasBody`.
    func submitResponse(streamID: Int32, headers: [(String, String)], hasBody: Bool) throws {
        let rc = Self.withNameValues(headers) { nva, count in
            if hasBody {
                var provider = Self.dataProvider
                return nghttp2_submit_response(session, streamID, nva, count, &provider)
            }
            return nghttp2_submit_response(session, streamID, nva, count, nil)
        }
        if rc != 0 { throw HTTP2Error(code: Int(rc), operation: "submit_response") }
    }

    /// Client: a new request; returns its stream id.
    func submitRequest(headers: [(String, String)]) throws -> Int32 {
        let streamID = Self.withNameValues(headers) { nva, count in
            var provider = Self.dataProvider
            return nghttp2_submit_request(session, nil, nva, count, &provider, nil)
        }
        if streamID < 0 { throw HTTP2Error(code: Int(streamID), operation: "submit_request") }
        return streamID
    }

    func submitTrailers(streamID: Int32, headers: [(String, String)]) throws {
        let rc = Self.withNameValues(headers) { nva, count in
            nghttp2_submit_trailer(session, streamID, nva, count)
        }
        if rc != 0 { throw HTTP2Error(code: Int(rc), operation: "submit_trailer") }
    }

    /// Wakes a stream whose data source returned `.deferred`.
    func resumeData(streamID: Int32) {
        nghttp2_session_resume_data(session, streamID)
    }

    /// Tells nghttp2 the application has consumed `count` DATA bytes, which
    /// lets it open the flow-control window again.
    func consume(streamID: Int32, count: Int) {
        guard count > 0 else { return }
        if nghttp2_session_consume(session, streamID, count) != 0 {
            // The stream is gone; give the connection window back anyway.
            nghttp2_session_consume_connection(session, count)
        }
    }

    func consumeConnection(count: Int) {
        guard count > 0 else { return }
        nghttp2_session_consume_connection(session, count)
    }

    func resetStream(streamID: Int32, errorCode: UInt32) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// A graceful GOAWAY: tells the client no new streams will be accepted.
    func submitShutdownNotice() {
        nghttp2_submit_shutdown_notice(session)
    }

    /// GOAWAY with `errorCode`; `message` goes in its debug data (gRPC
    /// clients read "too_many_pings" there).
    func submitGoAway(errorCode: UInt32, message: String = "") {
        let last = nghttp2_session_get_last_proc_stream_id(session)
        var bytes = Array(message.utf8)
        nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, &bytes, bytes.count)
    }

    func submitPing() {
        nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// Whether the stream can still take new outbound data.
    func remoteWindowSize(streamID: Int32) -> Int {
        Int(nghttp2_session_get_stream_remote_window_size(session, streamID))
    }

    // MARK: C bridging

    private static func from(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session {
        Unmanaged<HTTP2Session>.fromOpaque(userData!).takeUnretainedValue()
    }

    private static let dataProvider = nghttp2_data_provider(
        source: nghttp2_data_source(ptr: nil),
        read_callback: { _, streamID, buf, length, flags, _, userData in
            let session = HTTP2Session.from(userData)
            let target = UnsafeMutableRawBufferPointer(start: buf, count: length)
            switch session.delegate.sessionReadData(streamID: streamID, into: target) {
            case .deferred:
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            case .bytes(let count, let endOfData, let trailers):
                if endOfData {
                    flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                    if let trailers {
                        flags!.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                        try? session.submitTrailers(streamID: streamID, headers: trailers)
                    }
                }
                return count
            }
        }
    )

    private static func installFrameWatch(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks) { _, header, userData in
            guard let header else { return 0 }
            let session = HTTP2Session.from(userData)
            let type = header.pointee.type
            // DATA frames with a payload, most of the traffic, are not
            // reported; empty ones without END_STREAM are (a known flood).
            if session.sawFirstFrame && type == 0x0 && (header.pointee.length > 0 || header.pointee.flags & 0x1 != 0) { return 0 }
            session.sawFirstFrame = true
            let proceed = session.delegate.sessionBeginFrame(type: type, flags: header.pointee.flags, streamID: header.pointee.stream_id)
            return proceed ? 0 : Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
        }
    }

    private static func installCallbacks(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame else { return 0 }
            if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) {
                HTTP2Session.from(userData).delegate.sessionBeginHeaders(streamID: frame.pointee.hd.stream_id)
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            guard let frame, let name, let value else { return 0 }
            let field = HTTP2HeaderField(name: UnsafeBufferPointer(start: name, count: nameLength),
                                         value: UnsafeBufferPointer(start: value, count: valueLength))
            let keep = HTTP2Session.from(userData).delegate.sessionHeader(streamID: frame.pointee.hd.stream_id, field: field)
            return keep ? 0 : Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame else { return 0 }
            let delegate = HTTP2Session.from(userData).delegate
            let endStream = frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            switch UInt32(frame.pointee.hd.type) {
            case NGHTTP2_HEADERS.rawValue:
                delegate.sessionHeadersComplete(streamID: frame.pointee.hd.stream_id, endStream: endStream)
            case NGHTTP2_DATA.rawValue:
                delegate.sessionDataComplete(streamID: frame.pointee.hd.stream_id, endStream: endStream)
            case NGHTTP2_GOAWAY.rawValue:
                delegate.sessionGoAway(lastStreamID: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
            default:
                break
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
            guard let data else { return 0 }
            HTTP2Session.from(userData).delegate.sessionData(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            HTTP2Session.from(userData).delegate.sessionStreamClosed(streamID: streamID, errorCode: errorCode)
            return 0
        }
    }

    /// Builds nghttp2's name/value array in temporary memory (on the stack
    /// when small); nghttp2 copies the bytes during the submit call.
    private static func withNameValues<R>(_ headers: [(String, String)], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        var total = 0
        for (name, value) in headers { total += name.utf8.count + value.utf8.count }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(total, 1)) { bytes in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(headers.count, 1)) { fields in
                fill(headers, storage: bytes.baseAddress!, nva: fields.baseAddress!, body)
            }
        }
    }

    private static func fill<R>(_ headers: [(String, String)], storage: UnsafeMutablePointer<UInt8>, nva: UnsafeMutablePointer<nghttp2_nv>,
                                _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        var offset = 0
        for (index, (name, value)) in headers.enumerated() {
            let namePointer = storage + offset
            for byte in name.utf8 { storage[offset] = byte; offset += 1 }
            let valuePointer = storage + offset
            for byte in value.utf8 { storage[offset] = byte; offset += 1 }
            (nva + index).initialize(to: nghttp2_nv(
                name: namePointer, value: valuePointer,
                namelen: name.utf8.count, valuelen: value.utf8.count,
                flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
        }
        return body(UnsafePointer(nva), headers.count)
    }
}
