/* One gRPC call on an HTTP/2 stream: the request goes out as HEADERS and
 * one length-prefixed DATA message with END_STREAM; the response's headers,
 * messages and trailers come in through nghttp2's callbacks, every message
 * is decoded with protobuf-c as the method's output type, and when the
 * stream closes the call is judged: success only for grpc-status 0, HTTP
 * 200, a gRPC content type, every message decoded, and exactly one message
 * for a method that does not stream its response. */
#ifndef RPCLOAD_CALL_H
#define RPCLOAD_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "grpc_wire.h"
#include "stats.h"

struct connection;
struct mix_entry;

struct call {
    struct connection *connection;
    const struct mix_entry *entry;
    long entry_index;
    int32_t stream_id;
    bool active;
    bool recorded;         /* started after the warm-up: counts in the results */
    uint64_t intended_ns;  /* when it was meant to start; latency runs from here */
    size_t request_sent;   /* bytes of the framed request handed to nghttp2 */

    int http_status;       /* 0 until :status arrives */
    bool content_type_ok;
    int grpc_status;       /* -1 until grpc-status arrives (headers or trailers) */
    char grpc_message[STATS_EXAMPLE_LEN];
    uint32_t messages;
    bool decode_failed;
    const char *protocol_error; /* the first framing problem, if any */
    struct grpc_reader reader;

    struct call *next_free;
};

/* Starts a call of mix entry `entry_index` on `connection`, which must have
 * a free slot. Returns 0, or -1 when nghttp2 refuses a new stream (the
 * connection should then be retired). */
int call_start(struct connection *connection, long entry_index, uint64_t intended_ns, bool recorded);

/* Ends an active call that will never complete normally (its connection
 * failed, or it was still running at the end), counting it as `kind`. */
void call_abandon(struct call *call, enum error_kind kind, int code, const char *label, const char *example);

/* nghttp2 callbacks; the session's user data is the connection, each
 * stream's is its call. */
int call_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t name_len,
                   const uint8_t *value, size_t value_len, uint8_t flags, void *user_data);
int call_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                       size_t len, void *user_data);
int call_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data);

#endif
