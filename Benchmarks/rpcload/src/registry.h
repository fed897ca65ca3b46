/* Which methods rpcload can call: protobuf-c's service descriptors for every
 * generated service, looked up by a gRPC path such as
 * /platform.catalog.v1.CatalogService/GetProduct. The method descriptor
 * gives the request and response message descriptors; the table written by
 * tools/generate.sh adds what protobuf-c does not record (the .proto file
 * defining the service, and which methods stream). */
#ifndef RPCLOAD_REGISTRY_H
#define RPCLOAD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

/* Rows of generated/rpcload_services.c. */
struct rpcload_service_entry {
    const ProtobufCServiceDescriptor *service;
    const char *proto_file; /* relative to the proto root */
};
struct rpcload_streaming_method {
    const char *service; /* full name, e.g. platform.catalog.v1.CatalogService */
    const char *method;
    int client_streaming;
    int server_streaming;
};
extern const struct rpcload_service_entry rpcload_services[];
extern const size_t rpcload_service_count;
extern const struct rpcload_streaming_method rpcload_streaming_methods[];
extern const size_t rpcload_streaming_method_count;

struct method_info {
    const ProtobufCServiceDescriptor *service;
    const ProtobufCMethodDescriptor *method;
    const char *proto_file;
    bool client_streaming;
    bool server_streaming;
};

/* Finds "/package.Service/Method"; false when the path is malformed or no
 * generated service has that method. */
bool registry_lookup(const char *path, struct method_info *out);

/* Prints every callable method with its kind and message types. */
void registry_list(FILE *out);

#endif
