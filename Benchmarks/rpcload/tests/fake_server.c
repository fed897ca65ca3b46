/* A fake gRPC server for testing rpcload itself: plaintext HTTP/2 on
 * libnghttp2, answering every call the way the `x-fake` request metadata
 * asks, including the broken answers no real server gives on purpose:
 *
 *   ok (default)   one message, grpc-status 0
 *   stream:N       N messages, grpc-status 0
 *   status:N       trailers-only response with grpc-status N
 *   http:N         HTTP status N, no gRPC at all
 *   rst            RST_STREAM(INTERNAL_ERROR) instead of a response
 *   garbage        a message that is not valid protobuf, grpc-status 0
 *   no-status      a message, then the end of the stream without trailers
 *   two            two messages for any method, grpc-status 0
 *   compressed     the compressed flag set on a message
 *   truncated      a message shorter than its length prefix, grpc-status 0
 *   text           content-type text/plain
 *   delay:MS       like ok, answered MS milliseconds after the request ended
 *
 * Messages carry one field numbered 536870911 (the highest possible), which
 * no real message uses, so they decode as any message type. It serves
 * every connection on one thread and is fast enough to measure rpcload's
 * own ceiling.
 *
 *   fake_server [PORT]      (0 or nothing: a free port; prints "listening on PORT") */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

enum behavior { OK, STREAM, STATUS, HTTP, RST, GARBAGE, NO_STATUS, TWO, COMPRESSED, TRUNCATED, TEXT, DELAY };

struct stream {
    int32_t id;
    enum behavior behavior;
    int argument;
    uint8_t *body;
    size_t body_len;
    size_t body_sent;
    uint64_t due_ns; /* DELAY: when to answer; 0 once answered */
    struct stream *next;
};

struct connection {
    int fd;
    nghttp2_session *session;
    struct stream *streams;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static nghttp2_nv nv(const char *name, const char *value) {
    nghttp2_nv header = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE};
    return header;
}

/* Appends one framed message: flag, length, then `payload_len` bytes of the
 * unused field (or `raw` as it is when given). */
static void append_message(struct stream *stream, uint8_t flag, const uint8_t *raw, size_t raw_len, uint32_t claimed) {
    static const uint8_t field[] = {0xfa, 0xff, 0xff, 0xff, 0x0f, 16, 'f', 'a', 'k', 'e', ' ', 'r', 'e', 's',
                                    'p', 'o', 'n', 's', 'e', ' ', ' ', ' '};
    const uint8_t *payload = raw ? raw : field;
    size_t len = raw ? raw_len : sizeof field;
    uint32_t length = claimed ? claimed : (uint32_t)len;
    stream->body = realloc(stream->body, stream->body_len + 5 + len);
    uint8_t *out = stream->body + stream->body_len;
    out[0] = flag;
    out[1] = (uint8_t)(length >> 24);
    out[2] = (uint8_t)(length >> 16);
    out[3] = (uint8_t)(length >> 8);
    out[4] = (uint8_t)length;
    memcpy(out + 5, payload, len);
    stream->body_len += 5 + len;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buffer, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data) {
    (void)user_data;
    struct stream *stream = source->ptr;
    size_t n = stream->body_len - stream->body_sent;
    if (n > length) n = length;
    memcpy(buffer, stream->body + stream->body_sent, n);
    stream->body_sent += n;
    if (stream->body_sent == stream->body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (stream->behavior != NO_STATUS) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_nv trailers[] = {nv("grpc-status", "0")};
            nghttp2_submit_trailer(session, stream_id, trailers, 1);
        }
    }
    return (ssize_t)n;
}

static void respond(nghttp2_session *session, struct stream *stream) {
    char code[16];
    switch (stream->behavior) {
    case RST:
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream->id, NGHTTP2_INTERNAL_ERROR);
        return;
    case HTTP: {
        snprintf(code, sizeof code, "%d", stream->argument);
        nghttp2_nv headers[] = {nv(":status", code)};
        nghttp2_submit_response(session, stream->id, headers, 1, NULL);
        return;
    }
    case STATUS: {
        snprintf(code, sizeof code, "%d", stream->argument);
        nghttp2_nv headers[] = {nv(":status", "200"), nv("content-type", "application/grpc"), nv("grpc-status", code),
                                nv("grpc-message", "fake%20failure")};
        nghttp2_submit_response(session, stream->id, headers, 4, NULL);
        return;
    }
    case GARBAGE: {
        static const uint8_t bad[] = {0x0a, 0xff}; /* field 1, length never finished */
        append_message(stream, 0, bad, sizeof bad, 0);
        break;
    }
    case STREAM:
        for (int i = 0; i < stream->argument; i++) append_message(stream, 0, NULL, 0, 0);
        break;
    case TWO:
        append_message(stream, 0, NULL, 0, 0);
        append_message(stream, 0, NULL, 0, 0);
        break;
    case COMPRESSED: append_message(stream, 1, NULL, 0, 0); break;
    case TRUNCATED: {
        static const uint8_t part[] = {0x08, 0x01, 0x08};
        append_message(stream, 0, part, sizeof part, 10);
        break;
    }
    default: append_message(stream, 0, NULL, 0, 0); break;
    }
    nghttp2_nv headers[] = {nv(":status", "200"),
                            nv("content-type", stream->behavior == TEXT ? "text/plain" : "application/grpc")};
    nghttp2_data_provider body = {.source.ptr = stream, .read_callback = read_body};
    nghttp2_submit_response(session, stream->id, headers, 2, &body);
}

static void parse_behavior(struct stream *stream, const char *value) {
    static const struct { const char *name; enum behavior behavior; } names[] = {
        {"ok", OK}, {"stream", STREAM}, {"status", STATUS}, {"http", HTTP}, {"rst", RST}, {"garbage", GARBAGE},
        {"no-status", NO_STATUS}, {"two", TWO}, {"compressed", COMPRESSED}, {"truncated", TRUNCATED},
        {"text", TEXT}, {"delay", DELAY},
    };
    const char *colon = strchr(value, ':');
    size_t len = colon ? (size_t)(colon - value) : strlen(value);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && strncmp(value, names[i].name, len) == 0) stream->behavior = names[i].behavior;
    stream->argument = colon ? atoi(colon + 1) : 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    struct connection *connection = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    struct stream *stream = calloc(1, sizeof *stream);
    stream->id = frame->hd.stream_id;
    stream->next = connection->streams;
    connection->streams = stream;
    nghttp2_session_set_stream_user_data(session, stream->id, stream);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t name_len,
                     const uint8_t *value, size_t value_len, uint8_t flags, void *user_data) {
    (void)flags;
    (void)user_data;
    struct stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!stream || name_len != 6 || memcmp(name, "x-fake", 6) != 0) return 0;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)value_len, (const char *)value);
    parse_behavior(stream, text);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    (void)user_data;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    struct stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!stream) return 0;
    if (stream->behavior == DELAY) stream->due_ns = now_ns() + (uint64_t)stream->argument * 1000000ULL;
    else respond(session, stream);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    (void)error_code;
    struct connection *connection = user_data;
    struct stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!stream) return 0;
    for (struct stream **link = &connection->streams; *link; link = &(*link)->next) {
        if (*link == stream) {
            *link = stream->next;
            break;
        }
    }
    free(stream->body);
    free(stream);
    return 0;
}

static bool flush(struct connection *connection) {
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(connection->session, &data);
        if (n < 0) return false;
        if (n == 0) break;
        /* Blocking writes keep the fake simple; the client reads promptly. */
        for (ssize_t sent = 0; sent < n;) {
            ssize_t w = send(connection->fd, data + sent, (size_t)(n - sent), MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return false;
            sent += w;
        }
    }
    return nghttp2_session_want_read(connection->session) || nghttp2_session_want_write(connection->session);
}

static void close_connection(int epoll_fd, struct connection *connection) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, connection->fd, NULL);
    close(connection->fd);
    nghttp2_session_del(connection->session);
    while (connection->streams) {
        struct stream *next = connection->streams->next;
        free(connection->streams->body);
        free(connection->streams);
        connection->streams = next;
    }
    free(connection);
}

/* Answers DELAY calls whose time has come; returns the next due time. */
static uint64_t answer_due(struct connection **connections, int count, uint64_t now) {
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < count; i++) {
        if (!connections[i]) continue;
        for (struct stream *s = connections[i]->streams; s; s = s->next) {
            if (!s->due_ns) continue;
            if (s->due_ns <= now) {
                s->due_ns = 0;
                respond(connections[i]->session, s);
            } else if (s->due_ns < next) {
                next = s->due_ns;
            }
        }
    }
    return next;
}

#define MAX_CONNECTIONS 1024

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 128) != 0) {
        perror("fake_server");
        return 1;
    }
    socklen_t len = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &len);
    printf("listening on %d\n", ntohs(address.sin_port));
    fflush(stdout);

    nghttp2_session_callbacks *callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);

    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event);
    static struct connection *connections[MAX_CONNECTIONS];
    uint64_t next_due = UINT64_MAX;
    for (;;) {
        uint64_t now = now_ns();
        int timeout = next_due == UINT64_MAX ? -1 : next_due <= now ? 0 : (int)((next_due - now) / 1000000 + 1);
        struct epoll_event events[64];
        int n = epoll_wait(epoll_fd, events, 64, timeout);
        for (int i = 0; i < n; i++) {
            if (!events[i].data.ptr) {
                int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) continue;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                int slot = 0;
                while (slot < MAX_CONNECTIONS && connections[slot]) slot++;
                if (slot == MAX_CONNECTIONS) { close(fd); continue; }
                struct connection *connection = calloc(1, sizeof *connection);
                connection->fd = fd;
                nghttp2_session_server_new(&connection->session, callbacks, connection);
                nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
                nghttp2_submit_settings(connection->session, NGHTTP2_FLAG_NONE, settings, 1);
                connections[slot] = connection;
                struct epoll_event added = {.events = EPOLLIN, .data.ptr = &connections[slot]};
                epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &added);
                if (!flush(connection)) { close_connection(epoll_fd, connection); connections[slot] = NULL; }
                continue;
            }
            struct connection **slot = events[i].data.ptr;
            struct connection *connection = *slot;
            uint8_t buffer[65536];
            ssize_t got = recv(connection->fd, buffer, sizeof buffer, 0);
            bool alive = got > 0 && nghttp2_session_mem_recv(connection->session, buffer, (size_t)got) >= 0 &&
                         flush(connection);
            if (!alive) {
                close_connection(epoll_fd, connection);
                *slot = NULL;
            }
        }
        next_due = answer_due(connections, MAX_CONNECTIONS, now_ns());
        for (int i = 0; i < MAX_CONNECTIONS; i++) {
            if (connections[i] && !flush(connections[i])) {
                close_connection(epoll_fd, connections[i]);
                connections[i] = NULL;
            }
        }
    }
}
