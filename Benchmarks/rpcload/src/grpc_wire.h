/* Small pieces of the gRPC-over-HTTP/2 protocol (PROTOCOL-HTTP2.md) that
 * are pure functions: status names, grpc-message decoding, content types,
 * grpc-timeout values and the incremental reader of length-prefixed
 * messages. */
#ifndef RPCLOAD_GRPC_WIRE_H
#define RPCLOAD_GRPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; NULL for codes above 16. */
const char *grpc_status_name(int code);

/* Parses a grpc-status value (decimal); -1 when malformed. */
int grpc_parse_status(const uint8_t *value, size_t len);

/* Decodes a percent-encoded grpc-message into `out` (always terminated,
 * truncated to out_size - 1 bytes). */
void grpc_decode_message(const uint8_t *value, size_t len, char *out, size_t out_size);

/* Whether a content-type names gRPC: "application/grpc", optionally with
 * "+proto" or another subtype, or parameters after ";". */
bool grpc_content_type_ok(const uint8_t *value, size_t len);

/* Formats a grpc-timeout header value (at most 8 digits and a unit) for a
 * deadline in nanoseconds, choosing the finest unit that fits. */
void grpc_format_timeout(uint64_t ns, char *out, size_t out_size);

/* Incremental parser for a stream of length-prefixed messages, fed with
 * DATA chunks of any size. Whole messages inside one chunk are handed out
 * in place; only those split across chunks are copied. */
struct grpc_reader {
    uint8_t prefix[5];
    size_t prefix_have;
    uint32_t length;
    uint8_t *buffer;
    size_t buffer_have;
    size_t buffer_cap;
    uint32_t max_length;
};

enum grpc_reader_result {
    GRPC_READER_OK,
    GRPC_READER_COMPRESSED, /* a compressed message: we never offered an encoding */
    GRPC_READER_TOO_LARGE,  /* length above max_length */
    GRPC_READER_NO_MEMORY,
};

/* Called for every whole message; return false to stop. */
typedef bool (*grpc_message_fn)(void *context, const uint8_t *data, size_t len);

void grpc_reader_init(struct grpc_reader *reader, uint32_t max_length);
void grpc_reader_reset(struct grpc_reader *reader);
enum grpc_reader_result grpc_reader_feed(struct grpc_reader *reader, const uint8_t *data, size_t len,
                                         grpc_message_fn on_message, void *context);
/* Whether a message was begun but not finished (a truncated stream). */
bool grpc_reader_partial(const struct grpc_reader *reader);
void grpc_reader_free(struct grpc_reader *reader);

#endif
