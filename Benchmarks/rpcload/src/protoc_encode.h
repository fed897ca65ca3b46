/* Turns a request in protobuf text format into its binary encoding by
 * running `protoc --encode`: protobuf-c has no text-format parser, and protoc
 * is the reference one. It runs once per mix line at start-up, never while
 * measuring. */
#ifndef RPCLOAD_PROTOC_ENCODE_H
#define RPCLOAD_PROTOC_ENCODE_H

#include <stddef.h>
#include <stdint.h>

struct protoc_config {
    const char *protoc;            /* executable, looked up in PATH */
    const char *const *includes;   /* -I directories, in order */
    size_t include_count;
};

/* Encodes `text` as message `type_name` (full name, no leading dot) defined
 * in or imported by `proto_file`. On success returns 0 and a malloc'ed
 * buffer in *out; on failure returns -1 and a malloc'ed, NUL-terminated
 * explanation (protoc's own error output when it ran) in *error. */
int protoc_encode(const struct protoc_config *config, const char *proto_file, const char *type_name,
                  const char *text, uint8_t **out, size_t *out_len, char **error);

#endif
