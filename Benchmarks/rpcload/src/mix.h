/* The request mix: which calls to make, with which requests, how often.
 *
 * A mix file holds one entry per line (see README.md for the full format):
 *
 *     # comment
 *     @metadata x-tenant-id: demo
 *     90  /platform.catalog.v1.CatalogService/GetProduct  product_id: "sku-00042"
 *     10  /platform.catalog.v1.CatalogService/GetProduct  @missing.bin
 *
 * weight, gRPC path, then the request: protobuf text format (a line ending
 * in a backslash continues on the next), `@FILE` for a binary message, or
 * nothing for an empty one. Every request is encoded once, checked by
 * decoding it with protobuf-c, and kept framed (the 5-byte gRPC prefix
 * plus the message) so sending it copies bytes and nothing more. */
#ifndef RPCLOAD_MIX_H
#define RPCLOAD_MIX_H

#include <stddef.h>
#include <stdint.h>

#include "protoc_encode.h"
#include "registry.h"

struct metadata {
    char *name;  /* lower case, as HTTP/2 requires */
    char *value;
};

struct mix_entry {
    char *path;            /* "/package.Service/Method" */
    char *label;           /* how reports name it: the path, plus "#line" when a path repeats */
    struct method_info method;
    uint64_t weight;
    uint8_t *framed;       /* gRPC length prefix + encoded request */
    size_t framed_len;
    unsigned line;         /* in the mix file; 0 for a command-line request */
};

struct mix {
    struct mix_entry *entries;
    size_t count;
    uint64_t *cumulative;  /* running weight totals, for the weighted pick */
    uint64_t total_weight;
    struct metadata *metadata; /* sent on every call: the file's @metadata lines */
    size_t metadata_count;
};

/* Parses a mix file ("-" reads standard input). Returns 0, or -1 after
 * printing what is wrong, with the file and line, to stderr. */
int mix_load_file(struct mix *mix, const char *path, const struct protoc_config *protoc);

/* Adds one entry from the command line: `text` (text format) or
 * `data_file` (binary message, "-" for standard input); both may be NULL
 * for an empty request. */
int mix_add_request(struct mix *mix, const char *path, const char *text, const char *data_file,
                    const struct protoc_config *protoc);

/* Adds a metadata pair from "name: value" (the -H form and @metadata);
 * returns -1 when it has no colon or a reserved name. */
int mix_add_metadata(struct mix *mix, const char *header);

/* Fixes the weights and labels once every entry is in; -1 for an empty mix. */
int mix_finish(struct mix *mix);

/* The entry for a uniform random number: each is chosen in proportion to
 * its weight. */
const struct mix_entry *mix_pick(const struct mix *mix, uint64_t random);

void mix_free(struct mix *mix);

#endif
