#define _GNU_SOURCE
#include "protoc_encode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *format_error(const char *format, const char *detail) {
    char *message = NULL;
    if (asprintf(&message, format, detail) < 0) message = NULL;
    return message;
}

/* Reads a whole file descriptor into a growing buffer. */
static int read_all(int fd, uint8_t **data, size_t *len) {
    size_t cap = 4096, have = 0;
    uint8_t *buffer = malloc(cap);
    if (!buffer) return -1;
    for (;;) {
        if (have == cap) {
            uint8_t *grown = realloc(buffer, cap *= 2);
            if (!grown) { free(buffer); return -1; }
            buffer = grown;
        }
        ssize_t n = read(fd, buffer + have, cap - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { free(buffer); return -1; }
        if (n == 0) break;
        have += (size_t)n;
    }
    *data = buffer;
    *len = have;
    return 0;
}

int protoc_encode(const struct protoc_config *config, const char *proto_file, const char *type_name,
                  const char *text, uint8_t **out, size_t *out_len, char **error) {
    *out = NULL;
    *out_len = 0;
    *error = NULL;

    /* The text goes in and protoc's complaints come out through unlinked
     * temporary files, so neither side can block on a full pipe; only the
     * binary output is a pipe. */
    FILE *input = tmpfile(), *errors = tmpfile();
    int pipe_fds[2] = {-1, -1};
    if (!input || !errors || pipe(pipe_fds) != 0) {
        *error = format_error("cannot run protoc: %s", strerror(errno));
        goto fail;
    }
    fputs(text, input);
    fflush(input);
    rewind(input);

    /* argv: protoc --encode=T -I dir... file */
    size_t argc = 0;
    char **argv = calloc(config->include_count * 2 + 4, sizeof *argv);
    char *encode_flag = NULL;
    if (!argv || asprintf(&encode_flag, "--encode=%s", type_name) < 0) {
        free(argv);
        *error = format_error("cannot run protoc: %s", "out of memory");
        goto fail;
    }
    argv[argc++] = (char *)config->protoc;
    argv[argc++] = encode_flag;
    for (size_t i = 0; i < config->include_count; i++) {
        argv[argc++] = "-I";
        argv[argc++] = (char *)config->includes[i];
    }
    argv[argc++] = (char *)proto_file;
    argv[argc] = NULL;

    pid_t pid = fork();
    if (pid == 0) {
        dup2(fileno(input), STDIN_FILENO);
        dup2(pipe_fds[1], STDOUT_FILENO);
        dup2(fileno(errors), STDERR_FILENO);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(encode_flag);
    free(argv);
    if (pid < 0) {
        *error = format_error("cannot run protoc: %s", strerror(errno));
        goto fail;
    }
    close(pipe_fds[1]);
    pipe_fds[1] = -1;

    uint8_t *data = NULL;
    size_t len = 0;
    int read_status = read_all(pipe_fds[0], &data, &len);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}

    if (read_status != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(data);
        uint8_t *message = NULL;
        size_t message_len = 0;
        rewind(errors);
        if (read_all(fileno(errors), &message, &message_len) == 0) {
            while (message_len > 0 && (message[message_len - 1] == '\n' || message[message_len - 1] == '\r'))
                message_len--;
            uint8_t *terminated = realloc(message, message_len + 1);
            if (terminated) {
                terminated[message_len] = '\0';
                *error = (char *)terminated;
            } else {
                free(message);
            }
        }
        if (!*error || !**error) {
            free(*error);
            *error = format_error("protoc failed (%s)", WIFEXITED(status) ? "non-zero exit" : "killed");
        }
        goto fail;
    }
    *out = data;
    *out_len = len;
    close(pipe_fds[0]);
    fclose(input);
    fclose(errors);
    return 0;

fail:
    if (pipe_fds[0] >= 0) close(pipe_fds[0]);
    if (pipe_fds[1] >= 0) close(pipe_fds[1]);
    if (input) fclose(input);
    if (errors) fclose(errors);
    return -1;
}
