#define _GNU_SOURCE
#include "connection.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "driver.h"

#define READ_CHUNK (64 * 1024)
#define WRITE_BATCH (64 * 1024)  /* gather this much from nghttp2 before a write */
#define RECONNECT_DELAY_NS (100 * NS_PER_MS)
/* Large windows, so flow control never limits a benchmark: a server may
 * always send a whole big response or a fast stream without waiting for a
 * WINDOW_UPDATE round trip. */
#define STREAM_WINDOW (16 * 1024 * 1024)
#define CONNECTION_WINDOW (64 * 1024 * 1024)
#define MAX_MESSAGE (64U * 1024 * 1024)

int connection_init(struct connection *connection, struct driver *driver, unsigned index, unsigned slots) {
    memset(connection, 0, sizeof *connection);
    connection->driver = driver;
    connection->index = index;
    connection->fd = -1;
    connection->slots = slots;
    connection->calls = calloc(slots, sizeof *connection->calls);
    connection->out_cap = WRITE_BATCH * 2;
    connection->out = malloc(connection->out_cap);
    if (!connection->calls || !connection->out) return -1;
    for (unsigned i = 0; i < slots; i++) {
        struct call *call = &connection->calls[i];
        call->connection = connection;
        grpc_reader_init(&call->reader, MAX_MESSAGE);
        call->next_free = i + 1 < slots ? &connection->calls[i + 1] : NULL;
    }
    connection->free_calls = &connection->calls[0];
    return 0;
}

void connection_free(struct connection *connection) {
    if (!connection->driver) return; /* never initialised */
    connection_close(connection, NULL);
    if (connection->calls)
        for (unsigned i = 0; i < connection->slots; i++) grpc_reader_free(&connection->calls[i].reader);
    free(connection->calls);
    free(connection->out);
}

static void watch(struct connection *connection, bool writable) {
    struct epoll_event event = {.events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.ptr = connection};
    epoll_ctl(connection->driver->epoll_fd, EPOLL_CTL_MOD, connection->fd, &event);
    connection->want_epollout = writable;
}

void connection_close(struct connection *connection, const char *reason) {
    struct driver *driver = connection->driver;
    for (unsigned i = 0; i < connection->slots; i++) {
        struct call *call = &connection->calls[i];
        if (!call->active) continue;
        if (reason) {
            call_abandon(call, ERROR_CONNECTION, 0, "connection lost", reason);
        } else {
            call->active = false; /* a graceful close has no calls left; be safe */
            call->next_free = connection->free_calls;
            connection->free_calls = call;
            connection->in_flight--;
        }
    }
    if (reason) {
        /* Every failure is counted; only the first few are told, since a
         * dead server makes every reconnect attempt fail again. */
        uint64_t failures = ++driver->stats->connection_failures;
        if (!driver->options->quiet && failures <= 5)
            fprintf(stderr, "rpcload: connection %u: %s%s\n", connection->index, reason,
                    failures == 5 ? " (further connection failures are counted, not shown)" : "");
    }
    if (connection->session) {
        nghttp2_session_del(connection->session);
        connection->session = NULL;
    }
    if (connection->fd >= 0) {
        epoll_ctl(driver->epoll_fd, EPOLL_CTL_DEL, connection->fd, NULL);
        close(connection->fd);
        connection->fd = -1;
    }
    connection->state = CONNECTION_CLOSED;
    connection->out_len = 0;
    connection->want_epollout = false;
    connection->going_away = false;
    connection->settings_received = false;
    connection->retry_at_ns = now_ns() + (reason ? RECONNECT_DELAY_NS : 0);
}

static void fail_errno(struct connection *connection, const char *what) {
    char reason[160];
    snprintf(reason, sizeof reason, "%s: %s", what, strerror(errno));
    connection_close(connection, reason);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    (void)session;
    struct connection *connection = user_data;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        connection->settings_received = true;
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* Calls above last_stream_id are closed by nghttp2 (REFUSED_STREAM)
         * and counted there; the rest finish, then the connection is
         * replaced. */
        connection->going_away = true;
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR && !connection->driver->options->quiet)
            fprintf(stderr, "rpcload: connection %u: GOAWAY %s\n", connection->index,
                    nghttp2_http2_strerror(frame->goaway.error_code));
    }
    return 0;
}

static int start_session(struct connection *connection) {
    if (nghttp2_session_client_new(&connection->session, connection->driver->callbacks, connection) != 0)
        return -1;
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(connection->session, NGHTTP2_FLAG_NONE, settings, 2) != 0) return -1;
    if (nghttp2_session_set_local_window_size(connection->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW) != 0)
        return -1;
    return 0;
}

int connection_open(struct connection *connection) {
    struct driver *driver = connection->driver;
    const struct addrinfo *address = driver->addresses;
    int fd = socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, address->ai_protocol);
    if (fd < 0) {
        fail_errno(connection, "socket");
        return -1;
    }
    /* Requests are small and latency is the point: no Nagle delay. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connection->fd = fd;
    struct epoll_event event = {.events = EPOLLIN | EPOLLOUT, .data.ptr = connection};
    if (epoll_ctl(driver->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
        fail_errno(connection, "epoll");
        return -1;
    }
    connection->want_epollout = true;
    connection->state = CONNECTION_CONNECTING;
    if (connect(fd, address->ai_addr, address->ai_addrlen) != 0 && errno != EINPROGRESS) {
        fail_errno(connection, "connect");
        return -1;
    }
    return 0;
}

static void finish_connect(struct connection *connection) {
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(connection->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
    if (error != 0) {
        errno = error;
        fail_errno(connection, "connect");
        return;
    }
    if (start_session(connection) != 0) {
        connection_close(connection, "cannot start an HTTP/2 session");
        return;
    }
    connection->state = CONNECTION_OPEN;
    connection_flush(connection);
}

/* Writes out[0..out_len); keeps what the socket would not take. Returns
 * false when the connection failed. */
static bool write_out(struct connection *connection) {
    size_t written = 0;
    while (written < connection->out_len) {
        ssize_t n = send(connection->fd, connection->out + written, connection->out_len - written, MSG_NOSIGNAL);
        if (n > 0) {
            written += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        fail_errno(connection, "send");
        return false;
    }
    memmove(connection->out, connection->out + written, connection->out_len - written);
    connection->out_len -= written;
    return true;
}

void connection_flush(struct connection *connection) {
    if (connection->state != CONNECTION_OPEN) return;
    for (;;) {
        /* Gather frames until a batch is full or nghttp2 has nothing more. */
        bool more = true;
        while (connection->out_len < WRITE_BATCH) {
            const uint8_t *data = NULL;
            ssize_t n = nghttp2_session_mem_send(connection->session, &data);
            if (n < 0) {
                char reason[160];
                snprintf(reason, sizeof reason, "HTTP/2: %s", nghttp2_strerror((int)n));
                connection_close(connection, reason);
                return;
            }
            if (n == 0) {
                more = false;
                break;
            }
            if (connection->out_len + (size_t)n > connection->out_cap) {
                size_t cap = connection->out_cap;
                while (cap < connection->out_len + (size_t)n) cap *= 2;
                uint8_t *grown = realloc(connection->out, cap);
                if (!grown) {
                    connection_close(connection, "out of memory");
                    return;
                }
                connection->out = grown;
                connection->out_cap = cap;
            }
            memcpy(connection->out + connection->out_len, data, (size_t)n);
            connection->out_len += (size_t)n;
        }
        if (!write_out(connection)) return;
        if (connection->out_len > 0 || !more) break; /* socket full, or all sent */
    }
    bool pending = connection->out_len > 0;
    if (pending != connection->want_epollout) watch(connection, pending);

    /* A session that wants nothing more (after GOAWAY, or a fatal error
     * nghttp2 already answered) is over. */
    if (!nghttp2_session_want_read(connection->session) && !nghttp2_session_want_write(connection->session) &&
        !pending) {
        connection_close(connection, connection->in_flight ? "the server ended the session" : NULL);
    } else if (connection->going_away && connection->in_flight == 0 && !pending) {
        connection_close(connection, NULL); /* replaced by a fresh one */
    }
}

static void read_in(struct connection *connection) {
    uint8_t buffer[READ_CHUNK];
    /* A bounded number of reads per wake-up: a connection with a fast
     * stream must not keep the loop from the others, from the schedule or
     * from the end of the run (epoll reports it again at once). */
    for (int reads = 0; reads < 16; reads++) {
        ssize_t n = recv(connection->fd, buffer, sizeof buffer, 0);
        if (n > 0) {
            ssize_t used = nghttp2_session_mem_recv(connection->session, buffer, (size_t)n);
            if (used < 0) {
                char reason[160];
                snprintf(reason, sizeof reason, "HTTP/2: %s", nghttp2_strerror((int)used));
                connection_close(connection, reason);
                return;
            }
            if ((size_t)n < sizeof buffer) return; /* drained; saves an EAGAIN round */
            continue;
        }
        if (n == 0) {
            /* EOF. After a GOAWAY with nothing running that is the normal
             * end; otherwise calls were lost. */
            bool graceful = connection->going_away && connection->in_flight == 0;
            connection_close(connection, graceful ? NULL : "connection closed by the server");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        fail_errno(connection, "recv");
        return;
    }
}


void connection_on_event(struct connection *connection, uint32_t events) {
    if (connection->state == CONNECTION_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) finish_connect(connection);
        return;
    }
    if (connection->state != CONNECTION_OPEN) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_in(connection);
    if (connection->state != CONNECTION_OPEN) return;
    /* Reading may have produced frames to send (SETTINGS ACK, WINDOW_UPDATE,
     * PING ACK); and EPOLLOUT means the socket has room again. */
    connection_flush(connection);
}

unsigned connection_free_slots(const struct connection *connection) {
    if (connection->state != CONNECTION_OPEN || !connection->settings_received || connection->going_away) return 0;
    uint32_t server_limit =
        nghttp2_session_get_remote_settings(connection->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    unsigned limit = connection->slots < server_limit ? connection->slots : (unsigned)server_limit;
    return connection->in_flight < limit ? limit - connection->in_flight : 0;
}

void connection_cancel_calls(struct connection *connection) {
    for (unsigned i = 0; i < connection->slots; i++) {
        struct call *call = &connection->calls[i];
        if (!call->active) continue;
        if (connection->session)
            nghttp2_submit_rst_stream(connection->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
        call_abandon(call, ERROR_UNFINISHED, 0, "unfinished", "still running when the drain time ran out; cancelled");
    }
}

nghttp2_session_callbacks *connection_callbacks(void) {
    nghttp2_session_callbacks *callbacks = NULL;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) return NULL;
    nghttp2_session_callbacks_set_on_header_callback(callbacks, call_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, call_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, call_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    return callbacks;
}
