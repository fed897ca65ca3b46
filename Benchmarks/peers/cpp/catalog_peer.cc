// A catalog peer on gRPC C++ (the callback API), for benchmarks.
//
// Serves platform.catalog.v1.CatalogService from memory, with the products of
// a file written by the Python peer (catalog_peer.py --export FILE: one binary
// ListProductsResponse), so both peers serve the same bytes. Behaves like
// Benchmarks/peers/python/catalog_peer.py:
//
//   GetProduct        NOT_FOUND for an unknown id, INVALID_ARGUMENT for an empty one
//   BatchGetProducts  found products in request order, the rest in missing_product_ids
//   ListProducts      unary and paged; no filter or order_by (INVALID_ARGUMENT)
//   WatchProducts     replays one CHANGE_TYPE_CREATED change per product
//                     (sequence = index + 1) after resume_token, then ends with OK
//
// Every call needs x-tenant-id metadata (UNAUTHENTICATED without it); any
// tenant but --tenant sees an empty catalog. Other methods are UNIMPLEMENTED.
// Also serves grpc.health.v1.Health. Prints "listening on PORT" once serving;
// SIGTERM or SIGINT stops it (in-flight calls get one second).

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "platform/catalog/v1/catalog_service.grpc.pb.h"

namespace {

namespace catalog = platform::catalog::v1;

constexpr char kServiceName[] = "platform.catalog.v1.CatalogService";

// The products, in file order, indexed by id, and the change feed that
// WatchProducts replays; built once at start and read-only afterwards.
class Catalog {
 public:
  Catalog(catalog::ListProductsResponse products, std::string tenant)
      : tenant_(std::move(tenant)) {
    ordered_.Swap(products.mutable_products());
    by_id_.reserve(ordered_.size());
    changes_.reserve(ordered_.size());
    int64_t sequence = 0;
    for (const catalog::Product& product : ordered_) {
      by_id_.insert_or_assign(product.product_id(), &product);
      catalog::ProductChange& change = changes_.emplace_back();
      ++sequence;
      change.set_change_type(catalog::ProductChange::CHANGE_TYPE_CREATED);
      change.set_product_id(product.product_id());
      *change.mutable_product() = product;
      *change.mutable_change_time() = product.create_time();
      change.set_resume_token(std::to_string(sequence));
      change.set_sequence(sequence);
    }
  }

  enum class Tenant { kMissing, kOwner, kOther };

  // The caller's tenant from x-tenant-id (the last value if repeated, as the
  // Python peer's dict(metadata) takes it).
  Tenant TenantOf(const grpc::CallbackServerContext& context) const {
    auto [begin, end] = context.client_metadata().equal_range("x-tenant-id");
    if (begin == end) return Tenant::kMissing;
    const grpc::string_ref value = std::prev(end)->second;
    if (value.empty()) return Tenant::kMissing;
    return std::string_view(value.data(), value.size()) == tenant_ ? Tenant::kOwner : Tenant::kOther;
  }

  const catalog::Product* Find(const std::string& product_id) const {
    auto found = by_id_.find(product_id);
    return found == by_id_.end() ? nullptr : found->second;
  }

  const google::protobuf::RepeatedPtrField<catalog::Product>& ordered() const { return ordered_; }
  const std::vector<catalog::ProductChange>& changes() const { return changes_; }

 private:
  std::string tenant_;
  google::protobuf::RepeatedPtrField<catalog::Product> ordered_;
  std::unordered_map<std::string, const catalog::Product*> by_id_;
  std::vector<catalog::ProductChange> changes_;
};

const grpc::Status kUnauthenticated(grpc::StatusCode::UNAUTHENTICATED, "x-tenant-id metadata is required");

// A page or resume token: a non-negative decimal number, empty meaning 0.
// Values past any index saturate, which reads as "after the end".
bool ParseToken(const std::string& token, uint64_t* value) {
  uint64_t result = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
    result = result > (UINT64_MAX - 9) / 10 ? UINT64_MAX : result * 10 + static_cast<uint64_t>(c - '0');
  }
  *value = result;
  return true;
}

// WatchProducts: writes the feed's changes from `next` on (only those in one
// of `categories`, when given), the last one together with the OK status.
class ChangeWriter final : public grpc::ServerWriteReactor<catalog::ProductChange> {
 public:
  ChangeWriter(const std::vector<catalog::ProductChange>& changes, size_t next,
               const google::protobuf::RepeatedPtrField<std::string>& categories)
      : changes_(changes), categories_(categories.begin(), categories.end()) {
    next_ = Match(next);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {  // the client went away or the server is stopping
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
      return;
    }
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  // The first change at or after `index` that the request wants.
  size_t Match(size_t index) const {
    if (categories_.empty()) return index;
    for (; index < changes_.size(); ++index) {
      for (const std::string& category : changes_[index].product().categories()) {
        for (const std::string& wanted : categories_) {
          if (category == wanted) return index;
        }
      }
    }
    return index;
  }

  void WriteNext() {
    if (next_ >= changes_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const catalog::ProductChange* change = &changes_[next_];
    next_ = Match(next_ + 1);
    if (next_ >= changes_.size()) {
      StartWriteAndFinish(change, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(change);
    }
  }

  const std::vector<catalog::ProductChange>& changes_;
  const std::vector<std::string> categories_;
  size_t next_ = 0;
};

class CatalogService final : public catalog::CatalogService::CallbackService {
 public:
  explicit CatalogService(const Catalog& catalog) : catalog_(catalog) {}

  grpc::ServerUnaryReactor* GetProduct(grpc::CallbackServerContext* context,
                                       const catalog::GetProductRequest* request,
                                       catalog::Product* response) override {
    return Answer(context, GetProduct(*context, *request, response));
  }

  grpc::ServerUnaryReactor* BatchGetProducts(grpc::CallbackServerContext* context,
                                             const catalog::BatchGetProductsRequest* request,
                                             catalog::BatchGetProductsResponse* response) override {
    return Answer(context, BatchGetProducts(*context, *request, response));
  }

  grpc::ServerUnaryReactor* ListProducts(grpc::CallbackServerContext* context,
                                         const catalog::ListProductsRequest* request,
                                         catalog::ListProductsResponse* response) override {
    return Answer(context, ListProducts(*context, *request, response));
  }

  grpc::ServerWriteReactor<catalog::ProductChange>* WatchProducts(
      grpc::CallbackServerContext* context, const catalog::WatchProductsRequest* request) override {
    const Catalog::Tenant tenant = catalog_.TenantOf(*context);
    if (tenant == Catalog::Tenant::kMissing) return EmptyStream(kUnauthenticated);
    // Another tenant's feed is empty, whatever the token says.
    if (tenant == Catalog::Tenant::kOther) return EmptyStream(grpc::Status::OK);
    uint64_t after = 0;
    if (!ParseToken(request->resume_token(), &after)) {
      return EmptyStream(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "resume_token is malformed"));
    }
    const std::vector<catalog::ProductChange>& changes = catalog_.changes();
    const size_t start = after < changes.size() ? static_cast<size_t>(after) : changes.size();
    return new ChangeWriter(changes, start, request->categories());
  }

 private:
  static grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  // A stream that ends with `status` before any message.
  static grpc::ServerWriteReactor<catalog::ProductChange>* EmptyStream(const grpc::Status& status) {
    class Empty final : public grpc::ServerWriteReactor<catalog::ProductChange> {
     public:
      explicit Empty(const grpc::Status& status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    return new Empty(status);
  }

  grpc::Status GetProduct(const grpc::CallbackServerContext& context, const catalog::GetProductRequest& request,
                          catalog::Product* response) const {
    const Catalog::Tenant tenant = catalog_.TenantOf(context);
    if (tenant == Catalog::Tenant::kMissing) return kUnauthenticated;
    if (request.product_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "product_id is required");
    }
    const catalog::Product* product = tenant == Catalog::Tenant::kOwner ? catalog_.Find(request.product_id()) : nullptr;
    if (product == nullptr) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "product " + request.product_id() + " not found");
    }
    *response = *product;
    return grpc::Status::OK;
  }

  grpc::Status BatchGetProducts(const grpc::CallbackServerContext& context,
                                const catalog::BatchGetProductsRequest& request,
                                catalog::BatchGetProductsResponse* response) const {
    const Catalog::Tenant tenant = catalog_.TenantOf(context);
    if (tenant == Catalog::Tenant::kMissing) return kUnauthenticated;
    if (request.product_ids_size() > 1000) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "product_ids holds more than 1000 ids");
    }
    for (const std::string& product_id : request.product_ids()) {
      const catalog::Product* product = tenant == Catalog::Tenant::kOwner ? catalog_.Find(product_id) : nullptr;
      if (product == nullptr) {
        response->add_missing_product_ids(product_id);
      } else {
        *response->add_products() = *product;
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status ListProducts(const grpc::CallbackServerContext& context, const catalog::ListProductsRequest& request,
                            catalog::ListProductsResponse* response) const {
    const Catalog::Tenant tenant = catalog_.TenantOf(context);
    if (tenant == Catalog::Tenant::kMissing) return kUnauthenticated;
    if (request.page_size() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_size must not be negative");
    }
    if (!request.filter().empty() || !request.order_by().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the peer supports neither filter nor order_by");
    }
    const uint64_t size = request.page_size() == 0 ? 50 : std::min(request.page_size(), 1000);
    uint64_t start = 0;
    if (!ParseToken(request.page_token(), &start)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token is malformed");
    }
    const uint64_t total = tenant == Catalog::Tenant::kOwner ? catalog_.ordered().size() : 0;
    const uint64_t begin = std::min(start, total);
    const uint64_t end = std::min(begin + size, total);
    const auto& ordered = catalog_.ordered();
    response->mutable_products()->Reserve(static_cast<int>(end - begin));
    response->mutable_products()->Add(ordered.begin() + begin, ordered.begin() + end);
    if (start < total && start + size < total) response->set_next_page_token(std::to_string(start + size));
    response->set_total_size(static_cast<int32_t>(total));
    return grpc::Status::OK;
  }

  const Catalog& catalog_;
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 7203;
  std::string products_file;
  std::string tenant = "demo";
};

[[noreturn]] void Usage(const char* program, const std::string& error) {
  std::ostream& out = error.empty() ? std::cout : std::cerr;
  out << "usage: " << program << " --products-file FILE [--host HOST] [--port PORT] [--tenant TENANT]\n"
      << "  --products-file FILE  the products, one binary ListProductsResponse\n"
      << "                        (catalog_peer.py --export FILE writes it)\n"
      << "  --host HOST           default 127.0.0.1\n"
      << "  --port PORT           default 7203; 0 picks a free one\n"
      << "  --tenant TENANT       the tenant that owns the products (default demo)\n";
  if (!error.empty()) std::cerr << program << ": " << error << "\n";
  std::exit(error.empty() ? 0 : 2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") Usage(argv[0], "");
    std::string value;
    if (auto equals = flag.find('='); flag.rfind("--", 0) == 0 && equals != std::string::npos) {
      value = flag.substr(equals + 1);
      flag.resize(equals);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      Usage(argv[0], "argument " + flag + ": expected one argument");
    }
    if (flag == "--host") {
      options.host = value;
    } else if (flag == "--port") {
      char* rest = nullptr;
      long port = std::strtol(value.c_str(), &rest, 10);
      if (value.empty() || *rest != '\0' || port < 0 || port > 65535) Usage(argv[0], "invalid --port " + value);
      options.port = static_cast<int>(port);
    } else if (flag == "--products-file") {
      options.products_file = value;
    } else if (flag == "--tenant") {
      options.tenant = value;
    } else {
      Usage(argv[0], "unrecognized argument " + flag);
    }
  }
  if (options.products_file.empty()) Usage(argv[0], "--products-file is required");
  return options;
}

catalog::ListProductsResponse LoadProducts(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << file.rdbuf();
  catalog::ListProductsResponse products;
  if (!file || !products.ParseFromString(bytes.str())) {
    std::cerr << "catalog-peer: cannot read a ListProductsResponse from " << path << "\n";
    std::exit(1);
  }
  return products;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);

  // Block SIGTERM and SIGINT before gRPC starts its threads (they inherit
  // the mask), then wait for them on this thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const Catalog catalog(LoadProducts(options.products_file), options.tenant);
  CatalogService service(catalog);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC binds with SO_REUSEPORT by default, so a second server on a busy
  // port would start and share the load; refuse the port instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  const std::string host = options.host.find(':') != std::string::npos ? "[" + options.host + "]" : options.host;
  builder.AddListeningPort(host + ":" + std::to_string(options.port), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "catalog-peer: cannot listen on " << host << ":" << options.port << "\n";
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus(kServiceName, true);
  std::cout << "listening on " << port << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
