#include "grpc_wire.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *grpc_status_name(int code) {
    if (code < 0 || code >= (int)(sizeof status_names / sizeof status_names[0])) return NULL;
    return status_names[code];
}

int grpc_parse_status(const uint8_t *value, size_t len) {
    if (len == 0 || len > 9) return -1;
    int code = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') return -1;
        code = code * 10 + (value[i] - '0');
    }
    return code;
}

static int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void grpc_decode_message(const uint8_t *value, size_t len, char *out, size_t out_size) {
    if (out_size == 0) return;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < out_size; i++) {
        int high, low;
        /* A malformed escape is kept as it is, as the spec asks. */
        if (value[i] == '%' && i + 2 < len && (high = hex_value(value[i + 1])) >= 0 &&
            (low = hex_value(value[i + 2])) >= 0) {
            out[o++] = (char)(high << 4 | low);
            i += 2;
        } else {
            out[o++] = (char)value[i];
        }
    }
    out[o] = '\0';
}

bool grpc_content_type_ok(const uint8_t *value, size_t len) {
    static const char prefix[] = "application/grpc";
    size_t n = sizeof prefix - 1;
    if (len < n) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower(value[i]) != prefix[i]) return false;
    return len == n || value[n] == '+' || value[n] == ';';
}

void grpc_format_timeout(uint64_t ns, char *out, size_t out_size) {
    static const struct { char unit; uint64_t ns; } units[] = {
        {'n', 1}, {'u', 1000ULL}, {'m', 1000000ULL}, {'S', 1000000000ULL}, {'M', 60000000000ULL},
        {'H', 3600000000000ULL},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        /* Round up: a deadline must never come out shorter than asked. */
        uint64_t amount = (ns + units[i].ns - 1) / units[i].ns;
        if (amount <= 99999999ULL) {
            snprintf(out, out_size, "%llu%c", (unsigned long long)amount, units[i].unit);
            return;
        }
    }
    snprintf(out, out_size, "99999999H");
}

void grpc_reader_init(struct grpc_reader *reader, uint32_t max_length) {
    memset(reader, 0, sizeof *reader);
    reader->max_length = max_length;
}

void grpc_reader_reset(struct grpc_reader *reader) {
    reader->prefix_have = 0;
    reader->buffer_have = 0;
    reader->length = 0;
}

void grpc_reader_free(struct grpc_reader *reader) {
    free(reader->buffer);
    reader->buffer = NULL;
    reader->buffer_cap = 0;
}

bool grpc_reader_partial(const struct grpc_reader *reader) {
    return reader->prefix_have > 0;
}

enum grpc_reader_result grpc_reader_feed(struct grpc_reader *reader, const uint8_t *data, size_t len,
                                         grpc_message_fn on_message, void *context) {
    while (len > 0) {
        if (reader->prefix_have < 5) {
            /* Fast path: a whole message at the start of what is left. */
            if (reader->prefix_have == 0 && len >= 5) {
                uint32_t length = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
                if (data[0] != 0) return GRPC_READER_COMPRESSED;
                if (length > reader->max_length) return GRPC_READER_TOO_LARGE;
                if (len - 5 >= length) {
                    if (!on_message(context, data + 5, length)) return GRPC_READER_OK;
                    data += 5 + length;
                    len -= 5 + length;
                    continue;
                }
            }
            size_t take = 5 - reader->prefix_have;
            if (take > len) take = len;
            memcpy(reader->prefix + reader->prefix_have, data, take);
            reader->prefix_have += take;
            data += take;
            len -= take;
            if (reader->prefix_have < 5) return GRPC_READER_OK;
            if (reader->prefix[0] != 0) return GRPC_READER_COMPRESSED;
            reader->length = (uint32_t)reader->prefix[1] << 24 | (uint32_t)reader->prefix[2] << 16 |
                             (uint32_t)reader->prefix[3] << 8 | reader->prefix[4];
            if (reader->length > reader->max_length) return GRPC_READER_TOO_LARGE;
            reader->buffer_have = 0;
            if (reader->buffer_cap < reader->length) {
                uint8_t *grown = realloc(reader->buffer, reader->length);
                if (!grown) return GRPC_READER_NO_MEMORY;
                reader->buffer = grown;
                reader->buffer_cap = reader->length;
            }
        }
        size_t take = reader->length - reader->buffer_have;
        if (take > len) take = len;
        if (take) memcpy(reader->buffer + reader->buffer_have, data, take);
        reader->buffer_have += take;
        data += take;
        len -= take;
        if (reader->buffer_have == reader->length) {
            reader->prefix_have = 0;
            if (!on_message(context, reader->buffer, reader->length)) return GRPC_READER_OK;
        }
    }
    return GRPC_READER_OK;
}
