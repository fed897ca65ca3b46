/* One HTTP/2 client connection: a nonblocking TCP socket driven by the
 * epoll loop, and an nghttp2 session fed through its memory API (bytes read
 * go to mem_recv; mem_send's output is gathered and written in as few
 * system calls as the socket allows). Each connection owns a fixed pool of
 * calls, one per stream it may have open. */
#ifndef RPCLOAD_CONNECTION_H
#define RPCLOAD_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "call.h"

struct driver;

enum connection_state {
    CONNECTION_CLOSED,
    CONNECTION_CONNECTING, /* TCP handshake under way */
    CONNECTION_OPEN,
};

struct connection {
    struct driver *driver;
    unsigned index;
    int fd;
    enum connection_state state;
    nghttp2_session *session;
    bool settings_received; /* the server's SETTINGS: it speaks HTTP/2 */
    bool going_away;        /* GOAWAY received or stream ids used up: no new calls */
    uint64_t retry_at_ns;   /* when a closed connection may reconnect */

    struct call *calls;     /* pool of `slots` calls */
    struct call *free_calls;
    unsigned slots;
    unsigned in_flight;

    uint8_t *out;           /* frames from mem_send not yet written */
    size_t out_len;
    size_t out_cap;
    bool want_epollout;
};

int connection_init(struct connection *connection, struct driver *driver, unsigned index, unsigned slots);
void connection_free(struct connection *connection);

/* Starts a nonblocking connect to the driver's address. */
int connection_open(struct connection *connection);

/* Handles epoll readiness. */
void connection_on_event(struct connection *connection, uint32_t events);

/* Writes whatever nghttp2 has to send. */
void connection_flush(struct connection *connection);

/* How many more calls it can take now: its slots, capped by the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS. */
unsigned connection_free_slots(const struct connection *connection);

/* Closes the connection; calls still on it fail with `reason` when it is not
 * NULL (a failure, counted), or close silently (a graceful end). */
void connection_close(struct connection *connection, const char *reason);

/* Resets every call still running (counted as unfinished). */
void connection_cancel_calls(struct connection *connection);

/* The nghttp2 callbacks every connection's session uses (call.c's and a
 * frame hook for SETTINGS and GOAWAY); the caller frees them. */
nghttp2_session_callbacks *connection_callbacks(void);

#endif
