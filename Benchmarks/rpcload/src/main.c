/* rpcload: a gRPC load generator for Meridian's services. main wires the
 * pieces together: options, the mix (requests encoded up front), the
 * connections, the run, the report; and turns the outcome into an exit
 * status a CI script can trust (non-zero when any call failed). */
#define _GNU_SOURCE
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "driver.h"
#include "mix.h"
#include "options.h"
#include "registry.h"
#include "report.h"
#include "stats.h"

static bool is_directory_with(const char *directory, const char *inside) {
    char *path = NULL;
    if (asprintf(&path, "%s/%s", directory, inside) < 0) return false;
    bool found = access(path, R_OK) == 0;
    free(path);
    return found;
}

/* The project's proto/ tree: $RPCLOAD_PROTO_PATH, or the nearest proto/
 * above the executable (it lives in Benchmarks/rpcload/build/), so rpcload
 * runs from anywhere in the checkout without flags. */
static char *find_proto_root(void) {
    const char *configured = getenv("RPCLOAD_PROTO_PATH");
    if (configured && *configured) return strdup(configured);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return NULL;
    exe[len] = '\0';
    char *directory = dirname(exe);
    for (int level = 0; level < 6; level++) {
        char *candidate = NULL;
        if (asprintf(&candidate, "%s/proto", directory) < 0) return NULL;
        if (is_directory_with(candidate, "platform")) return candidate;
        free(candidate);
        directory = dirname(directory);
    }
    return NULL;
}

static void on_signal(int signal) {
    (void)signal;
    driver_stop();
}

int main(int argc, char **argv) {
    struct options options;
    options_parse(&options, argc, argv);
    if (options.list_methods) {
        registry_list(stdout);
        return 0;
    }

    /* protoc's include path: --proto-path, else the project's tree; and the
     * system's well-known types (google/protobuf/timestamp.proto etc.). */
    const char *includes[34];
    size_t include_count = 0;
    char *proto_root = NULL;
    for (size_t i = 0; i < options.proto_path_count && include_count < 32; i++)
        includes[include_count++] = options.proto_paths[i];
    if (include_count == 0 && (proto_root = find_proto_root())) includes[include_count++] = proto_root;
    if (is_directory_with("/usr/include", "google/protobuf/timestamp.proto")) includes[include_count++] = "/usr/include";
    struct protoc_config protoc = {options.protoc, includes, include_count};

    struct mix mix = {0};
    struct stats stats = {0};
    struct driver driver;
    bool driver_ready = false;
    int status = 2; /* a setup error until the run happens */
    int loaded = options.mix_file ? mix_load_file(&mix, options.mix_file, &protoc)
                                  : mix_add_request(&mix, options.method, options.text, options.data_file, &protoc);
    for (size_t i = 0; loaded == 0 && i < options.header_count; i++) loaded = mix_add_metadata(&mix, options.headers[i]);
    if (loaded != 0 || mix_finish(&mix) != 0) {
        if (!proto_root && options.proto_path_count == 0)
            fprintf(stderr, "rpcload: (no proto/ tree found for protoc: set --proto-path or RPCLOAD_PROTO_PATH)\n");
        goto done;
    }
    if (stats_init(&stats, mix.count) != 0) goto done;
    driver_ready = true; /* driver_free copes with a half-initialised driver */
    if (driver_init(&driver, &options, &mix, &stats) != 0) goto done;

    struct sigaction action = {.sa_handler = on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    if (driver_connect(&driver) != 0) goto done;
    if (!options.quiet)
        fprintf(stderr, "rpcload: %u connection%s to %s:%s ready; %s%.1f s\n", options.connections,
                options.connections == 1 ? "" : "s", options.host, options.port,
                options.warmup > 0 ? "warming up, then measuring " : "measuring ", options.duration);
    driver_run(&driver);

    uint64_t measured_end = driver.end_ns;
    if (driver.last_completion_ns > measured_end) measured_end = driver.last_completion_ns;
    struct report report = {
        .options = &options,
        .mix = &mix,
        .stats = &stats,
        .measured_s = measured_end > driver.measure_start_ns
                          ? (double)(measured_end - driver.measure_start_ns) / (double)NS_PER_S
                          : 0.0,
        .scheduled_s = driver.end_ns > driver.measure_start_ns
                           ? (double)(driver.end_ns - driver.measure_start_ns) / (double)NS_PER_S
                           : 0.0,
    };
    if (options.json_stdout) report_json(stdout, &report);
    else report_text(stdout, &report);
    if (options.json_file) {
        FILE *json = fopen(options.json_file, "w");
        if (!json) {
            perror(options.json_file);
            goto done;
        }
        report_json(json, &report);
        fclose(json);
    }
    status = stats.error_total > 0 || stats.connection_failures > 0 ? 1 : 0;

done:
    if (driver_ready) driver_free(&driver);
    stats_free(&stats);
    mix_free(&mix);
    free(proto_root);
    options_free(&options);
    return status;
}
