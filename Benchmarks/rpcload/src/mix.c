#define _GNU_SOURCE
#include "mix.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a file, or standard input for "-", into a NUL-terminated buffer. */
static char *read_file(const char *path, size_t *len_out) {
    FILE *file = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!file) return NULL;
    size_t cap = 8192, len = 0;
    char *data = malloc(cap);
    while (data) {
        if (len + 1 >= cap) {
            char *grown = realloc(data, cap *= 2);
            if (!grown) { free(data); data = NULL; break; }
            data = grown;
        }
        size_t n = fread(data + len, 1, cap - len - 1, file);
        len += n;
        if (n == 0) break;
    }
    int failed = ferror(file);
    if (file != stdin) fclose(file);
    if (!data || failed) { free(data); return NULL; }
    data[len] = '\0';
    if (len_out) *len_out = len;
    return data;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

static const char *reserved_headers[] = {
    "content-type", "te", "grpc-timeout", "connection", "host", "transfer-encoding",
    "keep-alive", "upgrade", "proxy-connection",
};

int mix_add_metadata(struct mix *mix, const char *header) {
    const char *colon = strchr(header, ':');
    /* Skip a leading colon so ":authority: x" is caught below as reserved
     * rather than read as an empty name. */
    if (colon == header) colon = strchr(header + 1, ':');
    if (!colon) {
        fprintf(stderr, "rpcload: metadata '%s' is not 'name: value'\n", header);
        return -1;
    }
    char *name = strndup(header, (size_t)(colon - header));
    char *value = strdup(colon + 1);
    if (!name || !value) { free(name); free(value); return -1; }
    char *trimmed_name = trim(name), *trimmed_value = trim(value);
    for (char *c = trimmed_name; *c; c++) *c = (char)tolower((unsigned char)*c);
    bool reserved = trimmed_name[0] == ':' || trimmed_name[0] == '\0';
    for (size_t i = 0; i < sizeof reserved_headers / sizeof reserved_headers[0]; i++)
        reserved = reserved || strcmp(trimmed_name, reserved_headers[i]) == 0;
    if (reserved) {
        fprintf(stderr, "rpcload: metadata '%s' cannot be set (rpcload sends it itself, or HTTP/2 forbids it)\n",
                trimmed_name);
        free(name);
        free(value);
        return -1;
    }
    struct metadata *grown = realloc(mix->metadata, (mix->metadata_count + 1) * sizeof *grown);
    if (!grown) { free(name); free(value); return -1; }
    mix->metadata = grown;
    /* A later pair with the same name replaces the earlier one, so -H on
     * the command line overrides a mix file's @metadata. */
    for (size_t i = 0; i < mix->metadata_count; i++) {
        if (strcmp(mix->metadata[i].name, trimmed_name) == 0) {
            free(mix->metadata[i].value);
            mix->metadata[i].value = strdup(trimmed_value);
            free(name);
            free(value);
            return mix->metadata[i].value ? 0 : -1;
        }
    }
    mix->metadata[mix->metadata_count].name = strdup(trimmed_name);
    mix->metadata[mix->metadata_count].value = strdup(trimmed_value);
    mix->metadata_count++;
    free(name);
    free(value);
    return 0;
}

/* Encodes (text) or reads (binary file) one request, checks that protobuf-c
 * decodes it as the method's input type, and appends the framed entry. */
static int add_entry(struct mix *mix, const char *where, uint64_t weight, const char *path, const char *text,
                     const char *data_file, unsigned line, const struct protoc_config *protoc) {
    struct method_info method;
    if (!registry_lookup(path, &method)) {
        fprintf(stderr, "%s: unknown method %s (rpcload --list-methods shows the known ones; "
                        "make generate after adding a .proto)\n", where, path);
        return -1;
    }
    uint8_t *message = NULL;
    size_t message_len = 0;
    if (data_file) {
        message = (uint8_t *)read_file(data_file, &message_len);
        if (!message) {
            fprintf(stderr, "%s: cannot read %s: %s\n", where, data_file, strerror(errno));
            return -1;
        }
    } else if (text && *text) {
        char *error = NULL;
        if (protoc_encode(protoc, method.proto_file, method.method->input->name, text, &message, &message_len,
                          &error) != 0) {
            fprintf(stderr, "%s: the request is not a valid %s in text format:\n%s\n", where,
                    method.method->input->name, error ? error : "(protoc said nothing)");
            free(error);
            return -1;
        }
    }
    ProtobufCMessage *decoded = protobuf_c_message_unpack(method.method->input, NULL, message_len, message);
    if (!decoded) {
        fprintf(stderr, "%s: protobuf-c cannot decode the request as %s\n", where, method.method->input->name);
        free(message);
        return -1;
    }
    protobuf_c_message_free_unpacked(decoded, NULL);

    struct mix_entry *grown = realloc(mix->entries, (mix->count + 1) * sizeof *grown);
    if (!grown) { free(message); return -1; }
    mix->entries = grown;
    struct mix_entry *entry = &mix->entries[mix->count];
    memset(entry, 0, sizeof *entry);
    entry->path = strdup(path);
    entry->method = method;
    entry->weight = weight;
    entry->line = line;
    entry->framed_len = 5 + message_len;
    entry->framed = malloc(entry->framed_len);
    if (!entry->path || !entry->framed) { free(message); return -1; }
    /* gRPC framing: flag byte 0 (not compressed), then the length big-endian. */
    entry->framed[0] = 0;
    entry->framed[1] = (uint8_t)(message_len >> 24);
    entry->framed[2] = (uint8_t)(message_len >> 16);
    entry->framed[3] = (uint8_t)(message_len >> 8);
    entry->framed[4] = (uint8_t)message_len;
    if (message_len) memcpy(entry->framed + 5, message, message_len);
    free(message);
    mix->count++;
    return 0;
}

int mix_add_request(struct mix *mix, const char *path, const char *text, const char *data_file,
                    const struct protoc_config *protoc) {
    return add_entry(mix, "rpcload", 1, path, text, data_file, 0, protoc);
}

/* One logical line: "weight path [request]". */
static int parse_entry(struct mix *mix, char *line, const char *file, unsigned number, const char *directory,
                       const struct protoc_config *protoc) {
    char where[512];
    snprintf(where, sizeof where, "%s:%u", file, number);
    char *end = NULL;
    errno = 0;
    unsigned long long weight = strtoull(line, &end, 10);
    if (end == line || errno != 0 || !isspace((unsigned char)*end) || line[0] == '-') {
        fprintf(stderr, "%s: expected 'weight /package.Service/Method [request]'\n", where);
        return -1;
    }
    char *path = trim(end);
    char *request = path;
    while (*request && !isspace((unsigned char)*request)) request++;
    if (*request) *request++ = '\0';
    request = trim(request);
    if (request[0] == '@') {
        /* A binary message, relative to the mix file's directory. */
        char *data_path = NULL;
        if (request[1] == '/' || !directory) data_path = strdup(request + 1);
        else if (asprintf(&data_path, "%s/%s", directory, request + 1) < 0) data_path = NULL;
        if (!data_path) return -1;
        int result = add_entry(mix, where, weight, path, NULL, data_path, number, protoc);
        free(data_path);
        return result;
    }
    return add_entry(mix, where, weight, path, request, NULL, number, protoc);
}

int mix_load_file(struct mix *mix, const char *path, const struct protoc_config *protoc) {
    char *data = read_file(path, NULL);
    if (!data) {
        fprintf(stderr, "rpcload: cannot read mix file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *directory = NULL;
    if (strcmp(path, "-") != 0) {
        const char *slash = strrchr(path, '/');
        directory = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    }

    int result = 0;
    unsigned number = 0;
    char *cursor = data;
    while (*cursor && result == 0) {
        /* Gather one logical line, joining lines that end in a backslash
         * (with a newline, which text format treats as a space). */
        unsigned first = ++number;
        char *line = cursor;
        char *write = cursor;
        for (;;) {
            char *newline = strchr(cursor, '\n');
            size_t len = newline ? (size_t)(newline - cursor) : strlen(cursor);
            char *next = newline ? newline + 1 : cursor + len;
            size_t keep = len;
            while (keep > 0 && cursor[keep - 1] == '\r') keep--;
            bool continued = keep > 0 && cursor[keep - 1] == '\\';
            if (continued) keep--;
            memmove(write, cursor, keep);
            write += keep;
            cursor = next;
            if (!continued || !*cursor) break;
            *write++ = '\n';
            number++;
        }
        *write = '\0';
        char *content = trim(line);
        if (content[0] == '\0' || content[0] == '#') continue;
        if (content[0] == '@') {
            if (strncmp(content, "@metadata", 9) == 0 && isspace((unsigned char)content[9])) {
                if (mix_add_metadata(mix, content + 10) != 0) {
                    fprintf(stderr, "%s:%u: bad @metadata line\n", path, first);
                    result = -1;
                }
            } else {
                fprintf(stderr, "%s:%u: unknown directive (only @metadata exists)\n", path, first);
                result = -1;
            }
            continue;
        }
        result = parse_entry(mix, content, path, first, directory, protoc);
    }
    free(directory);
    free(data);
    return result;
}

int mix_finish(struct mix *mix) {
    if (mix->count == 0) {
        fprintf(stderr, "rpcload: the mix has no requests\n");
        return -1;
    }
    mix->cumulative = malloc(mix->count * sizeof *mix->cumulative);
    if (!mix->cumulative) return -1;
    mix->total_weight = 0;
    for (size_t i = 0; i < mix->count; i++) {
        mix->total_weight += mix->entries[i].weight;
        mix->cumulative[i] = mix->total_weight;
    }
    if (mix->total_weight == 0) {
        fprintf(stderr, "rpcload: every weight in the mix is 0\n");
        return -1;
    }
    for (size_t i = 0; i < mix->count; i++) {
        struct mix_entry *entry = &mix->entries[i];
        bool repeated = false;
        for (size_t j = 0; j < mix->count; j++)
            repeated = repeated || (j != i && strcmp(mix->entries[j].path, entry->path) == 0);
        if (repeated && entry->line) {
            if (asprintf(&entry->label, "%s#%u", entry->path, entry->line) < 0) entry->label = NULL;
        } else {
            entry->label = strdup(entry->path);
        }
        if (!entry->label) return -1;
    }
    return 0;
}

const struct mix_entry *mix_pick(const struct mix *mix, uint64_t random) {
    uint64_t target = random % mix->total_weight;
    size_t low = 0, high = mix->count - 1;
    while (low < high) { /* first entry whose running total exceeds target */
        size_t middle = low + (high - low) / 2;
        if (mix->cumulative[middle] > target) high = middle;
        else low = middle + 1;
    }
    return &mix->entries[low];
}

void mix_free(struct mix *mix) {
    for (size_t i = 0; i < mix->count; i++) {
        free(mix->entries[i].path);
        free(mix->entries[i].label);
        free(mix->entries[i].framed);
    }
    for (size_t i = 0; i < mix->metadata_count; i++) {
        free(mix->metadata[i].name);
        free(mix->metadata[i].value);
    }
    free(mix->entries);
    free(mix->cumulative);
    free(mix->metadata);
    memset(mix, 0, sizeof *mix);
}
