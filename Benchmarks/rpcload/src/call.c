#include "call.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "connection.h"
#include "driver.h"
#include "mix.h"

/* The request body: the framed message, handed over in as many pieces as
 * nghttp2 asks for (flow control may split it). */
static ssize_t read_request(nghttp2_session *session, int32_t stream_id, uint8_t *buffer, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
    (void)session;
    (void)stream_id;
    (void)user_data;
    struct call *call = source->ptr;
    size_t left = call->entry->framed_len - call->request_sent;
    size_t n = left < length ? left : length;
    memcpy(buffer, call->entry->framed + call->request_sent, n);
    call->request_sent += n;
    if (call->request_sent == call->entry->framed_len) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

int call_start(struct connection *connection, long entry_index, uint64_t intended_ns, bool recorded) {
    struct driver *driver = connection->driver;
    struct call *call = connection->free_calls;
    const struct mix_entry *entry = &driver->mix->entries[entry_index];
    call->connection = connection;
    call->entry = entry;
    call->entry_index = entry_index;
    call->intended_ns = intended_ns;
    call->recorded = recorded;
    call->request_sent = 0;
    call->http_status = 0;
    call->content_type_ok = false;
    call->grpc_status = -1;
    call->grpc_message[0] = '\0';
    call->messages = 0;
    call->decode_failed = false;
    call->protocol_error = NULL;
    grpc_reader_reset(&call->reader);

    nghttp2_data_provider body = {.source.ptr = call, .read_callback = read_request};
    const struct request_headers *headers = &driver->headers[entry_index];
    int32_t stream_id = nghttp2_submit_request(connection->session, NULL, headers->nv, headers->count, &body, call);
    if (stream_id < 0) return -1;
    call->stream_id = stream_id;
    call->active = true;
    connection->free_calls = call->next_free;
    connection->in_flight++;
    if (recorded) driver->stats->entries[entry_index].started++;
    else driver->stats->warmup_calls++;
    return 0;
}

static void release(struct call *call) {
    struct connection *connection = call->connection;
    call->active = false;
    call->next_free = connection->free_calls;
    connection->free_calls = call;
    connection->in_flight--;
}

void call_abandon(struct call *call, enum error_kind kind, int code, const char *label, const char *example) {
    struct driver *driver = call->connection->driver;
    stats_error(driver->stats, call->entry_index, call->recorded, kind, code, label, example);
    if (call->stream_id > 0 && call->connection->session)
        nghttp2_session_set_stream_user_data(call->connection->session, call->stream_id, NULL);
    release(call);
}

static bool equals(const uint8_t *bytes, size_t len, const char *literal) {
    size_t n = strlen(literal);
    return len == n && memcmp(bytes, literal, n) == 0;
}

int call_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t name_len,
                   const uint8_t *value, size_t value_len, uint8_t flags, void *user_data) {
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    struct call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!call || !call->active) return 0;
    /* Response headers and trailers both land here; grpc-status may be in
     * either (in the headers for a trailers-only response). */
    if (equals(name, name_len, ":status")) {
        int status = 0;
        for (size_t i = 0; i < value_len && value[i] >= '0' && value[i] <= '9'; i++) status = status * 10 + (value[i] - '0');
        /* 1xx are interim: the final status comes later. */
        if (status >= 200 || call->http_status == 0) call->http_status = status;
    } else if (equals(name, name_len, "content-type")) {
        call->content_type_ok = grpc_content_type_ok(value, value_len);
    } else if (equals(name, name_len, "grpc-status")) {
        call->grpc_status = grpc_parse_status(value, value_len);
        if (call->grpc_status < 0 && !call->protocol_error) call->protocol_error = "malformed grpc-status";
    } else if (equals(name, name_len, "grpc-message")) {
        grpc_decode_message(value, value_len, call->grpc_message, sizeof call->grpc_message);
    }
    return 0;
}

static bool decode_message(void *context, const uint8_t *data, size_t len) {
    struct call *call = context;
    if (!call->connection->driver->options->no_decode) {
        const ProtobufCMessageDescriptor *output = call->entry->method.method->output;
        ProtobufCMessage *message = protobuf_c_message_unpack(output, NULL, len, data);
        if (!message) {
            call->decode_failed = true;
            return false; /* the call has failed; the rest of its body is ignored */
        }
        protobuf_c_message_free_unpacked(message, NULL);
    }
    call->messages++;
    /* Messages are a rate: counted when they arrive inside the measured
     * window, whichever call they belong to (a long stream may have begun
     * in the warm-up, and a failed one still delivered them). */
    struct driver *driver = call->connection->driver;
    if (driver_in_window(driver, now_ns())) driver->stats->entries[call->entry_index].messages++;
    return true;
}

int call_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                       size_t len, void *user_data) {
    (void)flags;
    (void)user_data;
    struct call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call || !call->active || call->decode_failed || call->protocol_error) return 0;
    switch (grpc_reader_feed(&call->reader, data, len, decode_message, call)) {
    case GRPC_READER_OK: break;
    case GRPC_READER_COMPRESSED: call->protocol_error = "compressed message, but no compression was offered"; break;
    case GRPC_READER_TOO_LARGE: call->protocol_error = "response message larger than 64 MiB"; break;
    case GRPC_READER_NO_MEMORY: call->protocol_error = "out of memory for a response message"; break;
    }
    return 0;
}

int call_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    (void)user_data;
    struct call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call || !call->active) return 0;
    struct driver *driver = call->connection->driver;
    struct stats *stats = driver->stats;
    uint64_t done = now_ns();
    long index = call->entry_index;
    char example[STATS_EXAMPLE_LEN];

    /* Judged in the order a client would see it: transport first, then
     * HTTP, then gRPC, then the body. */
    if (call->grpc_status < 0 && call->http_status == 0 && error_code != NGHTTP2_NO_ERROR) {
        snprintf(example, sizeof example, "stream reset before any response (%s)", nghttp2_http2_strerror(error_code));
        call_abandon(call, ERROR_RST_STREAM, (int)error_code, nghttp2_http2_strerror(error_code), example);
        return 0;
    }
    if (call->http_status != 200) {
        char label[32];
        snprintf(label, sizeof label, "http %d", call->http_status);
        snprintf(example, sizeof example, "HTTP status %d instead of 200%s", call->http_status,
                 call->http_status == 0 ? " (none received)" : "");
        call_abandon(call, ERROR_HTTP_STATUS, call->http_status, label, example);
        return 0;
    }
    if (call->grpc_status < 0) {
        if (error_code != NGHTTP2_NO_ERROR) {
            snprintf(example, sizeof example, "stream reset before grpc-status (%s)", nghttp2_http2_strerror(error_code));
            call_abandon(call, ERROR_RST_STREAM, (int)error_code, nghttp2_http2_strerror(error_code), example);
        } else {
            call_abandon(call, ERROR_PROTOCOL, 0, "missing grpc-status",
                         call->protocol_error ? call->protocol_error : "the response ended without grpc-status");
        }
        return 0;
    }
    if (call->grpc_status != 0) {
        const char *name = grpc_status_name(call->grpc_status);
        char label[32];
        if (name) snprintf(label, sizeof label, "%s", name);
        else snprintf(label, sizeof label, "status %d", call->grpc_status);
        call_abandon(call, ERROR_GRPC_STATUS, call->grpc_status, label, call->grpc_message);
        return 0;
    }
    /* grpc-status 0: now the body must hold up too. */
    if (call->decode_failed) {
        snprintf(example, sizeof example, "message %u is not a valid %s", call->messages + 1,
                 call->entry->method.method->output->name);
        call_abandon(call, ERROR_DECODE, 0, "decode-error", example);
        return 0;
    }
    if (!call->content_type_ok) {
        call_abandon(call, ERROR_PROTOCOL, 0, "content-type", "the response's content-type is not application/grpc");
        return 0;
    }
    if (call->protocol_error) {
        call_abandon(call, ERROR_PROTOCOL, 0, "framing", call->protocol_error);
        return 0;
    }
    if (grpc_reader_partial(&call->reader)) {
        call_abandon(call, ERROR_PROTOCOL, 0, "truncated message", "the response ended inside a message");
        return 0;
    }
    if (!call->entry->method.server_streaming && call->messages != 1) {
        snprintf(example, sizeof example, "%u response messages for a unary response", call->messages);
        call_abandon(call, ERROR_PROTOCOL, 0, "message count", example);
        return 0;
    }
    if (call->recorded) {
        struct entry_stats *entry = &stats->entries[index];
        histogram_record(&entry->latency, done - call->intended_ns);
        entry->ok++;
        if (done > driver->last_completion_ns) driver->last_completion_ns = done;
    }
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    release(call);
    return 0;
}
