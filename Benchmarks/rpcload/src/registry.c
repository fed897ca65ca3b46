#include "registry.h"

#include <string.h>

static void streaming_flags(const char *service, const char *method, struct method_info *info) {
    info->client_streaming = info->server_streaming = false;
    for (size_t i = 0; i < rpcload_streaming_method_count; i++) {
        const struct rpcload_streaming_method *row = &rpcload_streaming_methods[i];
        if (strcmp(row->service, service) == 0 && strcmp(row->method, method) == 0) {
            info->client_streaming = row->client_streaming != 0;
            info->server_streaming = row->server_streaming != 0;
            return;
        }
    }
}

bool registry_lookup(const char *path, struct method_info *out) {
    if (path[0] != '/') return false;
    const char *slash = strchr(path + 1, '/');
    if (!slash || slash == path + 1 || slash[1] == '\0' || strchr(slash + 1, '/')) return false;
    size_t service_len = (size_t)(slash - (path + 1));
    for (size_t i = 0; i < rpcload_service_count; i++) {
        const ProtobufCServiceDescriptor *service = rpcload_services[i].service;
        if (strlen(service->name) != service_len || memcmp(service->name, path + 1, service_len) != 0) continue;
        const ProtobufCMethodDescriptor *method = protobuf_c_service_descriptor_get_method_by_name(service, slash + 1);
        if (!method) return false;
        out->service = service;
        out->method = method;
        out->proto_file = rpcload_services[i].proto_file;
        streaming_flags(service->name, method->name, out);
        return true;
    }
    return false;
}

void registry_list(FILE *out) {
    for (size_t i = 0; i < rpcload_service_count; i++) {
        const ProtobufCServiceDescriptor *service = rpcload_services[i].service;
        for (unsigned m = 0; m < service->n_methods; m++) {
            const ProtobufCMethodDescriptor *method = &service->methods[m];
            struct method_info info;
            streaming_flags(service->name, method->name, &info);
            const char *kind = info.client_streaming && info.server_streaming ? "bidi-streaming"
                               : info.client_streaming                        ? "client-streaming"
                               : info.server_streaming                        ? "server-streaming"
                                                                              : "unary";
            fprintf(out, "/%s/%s\t%s\t%s -> %s\n", service->name, method->name, kind, method->input->name,
                    method->output->name);
        }
    }
}
