/* What a run counts: per mix entry, successful calls (with their latency
 * histogram) and streamed messages; and every failure by its kind and
 * code. A failed call is never counted as throughput and never enters a
 * latency histogram. */
#ifndef RPCLOAD_STATS_H
#define RPCLOAD_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

enum error_kind {
    ERROR_GRPC_STATUS,  /* the server answered with a non-zero grpc-status (code = status) */
    ERROR_HTTP_STATUS,  /* an HTTP :status other than 200 (code = status) */
    ERROR_RST_STREAM,   /* the stream was reset before grpc-status arrived (code = HTTP/2 error code) */
    ERROR_CONNECTION,   /* the connection failed with the call on it */
    ERROR_DECODE,       /* a response message protobuf-c could not decode */
    ERROR_PROTOCOL,     /* a response that breaks the gRPC protocol (missing status, bad framing...) */
    ERROR_UNFINISHED,   /* still running when the drain time ran out; cancelled */
};

#define STATS_MAX_ERROR_ROWS 64
#define STATS_EXAMPLE_LEN 200

struct error_row {
    enum error_kind kind;
    int code;
    char label[64];                /* e.g. "NOT_FOUND", "http 503", "REFUSED_STREAM" */
    char example[STATS_EXAMPLE_LEN]; /* the first grpc-message or explanation seen */
    uint64_t count;
    uint64_t during_warmup;
};

struct entry_stats {
    struct histogram latency; /* successful, recorded calls only */
    uint64_t started;         /* recorded calls started */
    uint64_t ok;
    uint64_t errors;
    uint64_t messages;        /* response messages decoded inside the measured window */
};

struct stats {
    struct entry_stats *entries; /* one per mix entry */
    size_t entry_count;
    struct error_row errors[STATS_MAX_ERROR_ROWS];
    size_t error_rows;
    uint64_t error_total;         /* including warm-up */
    uint64_t connection_failures; /* connections lost or refused (each may fail several calls) */
    uint64_t warmup_calls;        /* calls started during warm-up (not measured) */
    uint64_t unsent;              /* open loop: scheduled requests never sent */
    uint64_t max_backlog;         /* open loop: most requests ever waiting for a free stream */
};

int stats_init(struct stats *stats, size_t entry_count);
void stats_free(struct stats *stats);

/* Counts one failure. `entry` < 0 when no call is concerned (a connection
 * that failed with nothing on it). `example` may be NULL. */
void stats_error(struct stats *stats, long entry, bool recorded, enum error_kind kind, int code,
                 const char *label, const char *example);

const char *error_kind_name(enum error_kind kind);

#endif
