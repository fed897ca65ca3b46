"""A catalog peer on gRPC's Python implementation (grpcio), for benchmarks.

Serves platform.catalog.v1.CatalogService from memory with the same
deterministic products as the real catalog's --demo-data (the first
--products of them, ids sku-00000...), for the tenant `demo`:

  GetProduct        NOT_FOUND for an unknown id, INVALID_ARGUMENT for an empty
                    one, UNAUTHENTICATED without x-tenant-id metadata
  BatchGetProducts  found products in request order, the rest in missing_product_ids
  ListProducts      unary and paged, as in the contract (ListProducts does not
                    stream); filter and order_by are not supported (INVALID_ARGUMENT)
  WatchProducts     the server-streaming method: replays the peer's change feed,
                    one CHANGE_TYPE_CREATED change per product (sequence = index + 1),
                    after `resume_token`, then ends with OK. The real catalog starts
                    from "now" for an empty token and stays open for live changes;
                    the peer has no live changes, so the stream is finite and
                    measurable as messages per second.

Every other method answers UNIMPLEMENTED (grpcio's default). Also serves
grpc.health.v1.Health. Stubs are generated at start-up from the repository's
proto/ into a temporary directory with grpc_tools.protoc.

  python catalog_peer.py --mode sync --port 7201     # grpc.server, thread pool
  python catalog_peer.py --mode aio --port 7201      # grpc.aio.server, asyncio

Prints "listening on PORT" once it serves (handy with --port 0).
"""
import argparse
import asyncio
import concurrent.futures
import importlib
import pathlib
import re
import shutil
import signal
import sys
import tempfile

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[3]
STUB_PACKAGE = "meridian_catalog_peer_stubs"
MASK64 = (1 << 64) - 1


def generate_stubs(proto_root):
    """Generates the catalog's Python stubs into a temporary directory and
    imports them. They live under a package of their own because the
    contracts' top-level package is named `platform`, which is also Python's
    standard `platform` module."""
    from grpc_tools import protoc

    out = pathlib.Path(tempfile.mkdtemp(prefix="catalog-peer-stubs-"))
    package = out / STUB_PACKAGE
    package.mkdir()
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    files = ["platform/catalog/v1/catalog_service.proto", "platform/common/v1/common.proto", "google/rpc/status.proto"]
    status = protoc.main(["protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={package}",
                          f"--grpc_python_out={package}", *files])
    if status != 0:
        sys.exit(f"catalog_peer: grpc_tools.protoc failed on {proto_root}")
    for path in package.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"^from (platform|google\.rpc)([. ])", rf"from {STUB_PACKAGE}.\1\2", text, flags=re.M)
        path.write_text(text)
    sys.path.insert(0, str(out))
    messages = importlib.import_module(f"{STUB_PACKAGE}.platform.catalog.v1.catalog_service_pb2")
    services = importlib.import_module(f"{STUB_PACKAGE}.platform.catalog.v1.catalog_service_pb2_grpc")
    common = importlib.import_module(f"{STUB_PACKAGE}.platform.common.v1.common_pb2")
    return out, messages, services, common


class SplitMix64:
    """The real catalog's generator (Services/Catalog/Server/DemoCatalog.swift),
    so the peer's products are the demo catalog's, field for field."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


CATEGORIES = [
    (["home", "home/kitchen"], ["Chef's Knife", "Cast Iron Skillet", "Espresso Maker", "Cutting Board", "Stock Pot", "Blender"], (12, 240)),
    (["home", "home/furniture"], ["Oak Desk", "Reading Chair", "Bookshelf", "Side Table", "Floor Lamp"], (40, 900)),
    (["electronics", "electronics/audio"], ["Wireless Headphones", "Bookshelf Speakers", "Soundbar", "Turntable", "Earbuds"], (25, 600)),
    (["electronics", "electronics/computers"], ["Mechanical Keyboard", "4K Monitor", "Laptop Stand", "USB-C Dock", "Webcam"], (20, 1200)),
    (["sports", "sports/outdoor"], ["Trail Running Shoes", "Hiking Backpack", "Camping Tent", "Sleeping Bag", "Headlamp"], (15, 450)),
    (["sports", "sports/fitness"], ["Yoga Mat", "Adjustable Dumbbells", "Resistance Bands", "Jump Rope", "Foam Roller"], (8, 350)),
    (["fashion", "fashion/men"], ["Wool Sweater", "Denim Jacket", "Leather Belt", "Chino Trousers", "Rain Coat"], (18, 280)),
    (["fashion", "fashion/women"], ["Linen Dress", "Cashmere Scarf", "Ankle Boots", "Trench Coat", "Silk Blouse"], (20, 420)),
    (["books", "books/fiction"], ["Mystery Novel", "Fantasy Saga", "Short Stories", "Historical Novel"], (6, 40)),
    (["toys", "toys/games"], ["Strategy Board Game", "Jigsaw Puzzle", "Card Game", "Building Blocks Set"], (9, 120)),
]
BRANDS = ["Acme", "Northwind", "Lumen", "Fjord", "Keystone", "Halcyon", "Orbit", "Tamarack", "Verdant", "Juniper"]
ADJECTIVES = ["Classic", "Pro", "Compact", "Deluxe", "Everyday", "Premium", "Eco", "Ultra", "Studio", "Travel"]
COLORS = ["black", "white", "red", "blue", "green", "grey", "navy", "oak", "sand", "olive"]
# A fixed creation time (2025-01-01T00:00:00Z), so responses are identical run to run.
CREATED_SECONDS = 1735689600


def demo_product(messages, common, index):
    random = SplitMix64(index * 0x9E3779B97F4A7C15 + 42)
    paths, nouns, (low, high) = CATEGORIES[random.next() % len(CATEGORIES)]
    noun = nouns[random.next() % len(nouns)]
    brand = BRANDS[random.next() % len(BRANDS)]
    adjective = ADJECTIVES[random.next() % len(ADJECTIVES)]
    color = COLORS[random.next() % len(COLORS)]
    span = float(high) - float(low)
    # Same floating-point steps as the Swift code, then integer cents ending in 99.
    cents = int((float(low) + span * float(random.next() % 10_000) / 10_000) * 100) // 100 * 100 + 99
    roll = random.next() % 100
    availability = (common.AVAILABILITY_IN_STOCK if roll < 85
                    else common.AVAILABILITY_OUT_OF_STOCK if roll < 93 else common.AVAILABILITY_BACKORDER)
    quantity = 1 + random.next() % 200 if availability == common.AVAILABILITY_IN_STOCK else 0
    product_id = "sku-%05d" % index
    product = messages.Product(
        product_id=product_id,
        title=f"{brand} {adjective} {noun}",
        description=f"The {adjective.lower()} {noun.lower()} from {brand}, in {color}. Built for everyday use and made to last.",
        categories=paths,
        brand=brand,
        attributes={"color": color},
        price=common.Money(currency_code="EUR", units=cents // 100, nanos=(cents % 100) * 10_000_000),
        availability=availability,
        available_quantity=quantity,
        image_uris=[f"https://images.example.com/{product_id}.jpg"],
        etag=f'"{index + 1}"',
    )
    product.create_time.seconds = CREATED_SECONDS
    product.update_time.seconds = CREATED_SECONDS
    return product


class Catalog:
    """The peer's logic, shared by the sync and asyncio servers: each method
    returns a response, or a (code, message) pair for an error."""

    def __init__(self, messages, common, count, tenant):
        self.messages = messages
        self.tenant = tenant
        self.products = {}
        self.ordered = []
        for index in range(count):
            product = demo_product(messages, common, index)
            self.products[product.product_id] = product
            self.ordered.append(product)
        self.changes = [messages.ProductChange(change_type=messages.ProductChange.CHANGE_TYPE_CREATED,
                                               product_id=product.product_id, product=product,
                                               change_time=product.create_time, resume_token=str(sequence),
                                               sequence=sequence)
                        for sequence, product in enumerate(self.ordered, start=1)]

    def tenant_error(self, metadata):
        tenant = dict(metadata).get("x-tenant-id")
        if not tenant:
            return grpc.StatusCode.UNAUTHENTICATED, "x-tenant-id metadata is required"
        return None if tenant == self.tenant else tenant

    def products_of(self, metadata):
        """(products by id, error): another tenant simply has no products."""
        error = self.tenant_error(metadata)
        if isinstance(error, tuple):
            return None, error
        return ({} if error else self.products), None

    def get_product(self, request, metadata):
        products, error = self.products_of(metadata)
        if error:
            return error
        if not request.product_id:
            return grpc.StatusCode.INVALID_ARGUMENT, "product_id is required"
        product = products.get(request.product_id)
        if product is None:
            return grpc.StatusCode.NOT_FOUND, f"product {request.product_id} not found"
        return product

    def batch_get_products(self, request, metadata):
        products, error = self.products_of(metadata)
        if error:
            return error
        if len(request.product_ids) > 1000:
            return grpc.StatusCode.INVALID_ARGUMENT, "product_ids holds more than 1000 ids"
        response = self.messages.BatchGetProductsResponse()
        for product_id in request.product_ids:
            product = products.get(product_id)
            if product is None:
                response.missing_product_ids.append(product_id)
            else:
                response.products.append(product)
        return response

    def list_products(self, request, metadata):
        products, error = self.products_of(metadata)
        if error:
            return error
        if request.page_size < 0:
            return grpc.StatusCode.INVALID_ARGUMENT, "page_size must not be negative"
        if request.filter or request.order_by:
            return grpc.StatusCode.INVALID_ARGUMENT, "the peer supports neither filter nor order_by"
        size = 50 if request.page_size == 0 else min(request.page_size, 1000)
        ordered = self.ordered if products else []
        try:
            start = int(request.page_token or "0")
        except ValueError:
            return grpc.StatusCode.INVALID_ARGUMENT, "page_token is malformed"
        page = ordered[start:start + size]
        following = start + size
        return self.messages.ListProductsResponse(
            products=page, next_page_token=str(following) if following < len(ordered) else "",
            total_size=len(ordered))

    def watch_products(self, request, metadata):
        """(changes to send, error)."""
        products, error = self.products_of(metadata)
        if error:
            return None, error
        if not products:
            return [], None
        try:
            after = int(request.resume_token or "0")
        except ValueError:
            return None, (grpc.StatusCode.INVALID_ARGUMENT, "resume_token is malformed")
        wanted = set(request.categories)
        changes = self.changes[after:]
        if wanted:
            changes = [c for c in changes if wanted.intersection(c.product.categories)]
        return changes, None


def sync_servicer(base, catalog):
    class Servicer(base):
        def _answer(self, result, context):
            if isinstance(result, tuple):
                context.abort(*result)
            return result

        def GetProduct(self, request, context):
            return self._answer(catalog.get_product(request, context.invocation_metadata()), context)

        def BatchGetProducts(self, request, context):
            return self._answer(catalog.batch_get_products(request, context.invocation_metadata()), context)

        def ListProducts(self, request, context):
            return self._answer(catalog.list_products(request, context.invocation_metadata()), context)

        def WatchProducts(self, request, context):
            changes, error = catalog.watch_products(request, context.invocation_metadata())
            if error:
                context.abort(*error)
            yield from changes

    return Servicer()


def aio_servicer(base, catalog):
    class Servicer(base):
        async def _answer(self, result, context):
            if isinstance(result, tuple):
                await context.abort(*result)
            return result

        async def GetProduct(self, request, context):
            return await self._answer(catalog.get_product(request, context.invocation_metadata()), context)

        async def BatchGetProducts(self, request, context):
            return await self._answer(catalog.batch_get_products(request, context.invocation_metadata()), context)

        async def ListProducts(self, request, context):
            return await self._answer(catalog.list_products(request, context.invocation_metadata()), context)

        async def WatchProducts(self, request, context):
            changes, error = catalog.watch_products(request, context.invocation_metadata())
            if error:
                await context.abort(*error)
            for change in changes:
                yield change

    return Servicer()


def add_health(server):
    """grpc.health.v1 for the sync server (SERVING for the catalog and for "")."""
    try:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    except ImportError:  # health is a convenience; the catalog works without it
        return
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ("", "platform.catalog.v1.CatalogService"):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


# grpcio binds with SO_REUSEPORT by default, so a second peer on a busy port
# would start silently and share the load; refuse the port instead.
SERVER_OPTIONS = [("grpc.so_reuseport", 0)]


def run_sync(args, catalog, services):
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=args.workers), options=SERVER_OPTIONS)
    services.add_CatalogServiceServicer_to_server(sync_servicer(services.CatalogServiceServicer, catalog), server)
    add_health(server)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"listening on {port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(1))
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(1).wait()


async def run_aio(args, catalog, services):
    server = grpc.aio.server(options=SERVER_OPTIONS)
    services.add_CatalogServiceServicer_to_server(aio_servicer(services.CatalogServiceServicer, catalog), server)
    try:  # grpc.health.v1, as in add_health, with the asyncio servicer
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in ("", "platform.catalog.v1.CatalogService"):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    except ImportError:
        pass
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    await server.start()
    print(f"listening on {port}", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.stop(1)))
    await server.wait_for_termination()


def main():
    parser = argparse.ArgumentParser(description="Catalog peer on grpcio, for benchmarks.")
    parser.add_argument("--mode", choices=("sync", "aio"), default="sync",
                        help="grpc.server with a thread pool, or grpc.aio.server (default sync)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7201, help="0 picks a free port (default 7201)")
    parser.add_argument("--products", type=int, default=10000,
                        help="demo products sku-00000... (default 10000, as the catalog's --demo-data)")
    parser.add_argument("--tenant", default="demo", help="the tenant that owns them (default demo)")
    parser.add_argument("--workers", type=int, default=16, help="sync mode's thread pool (default 16)")
    parser.add_argument("--proto-root", default=str(ROOT / "proto"))
    parser.add_argument("--export", metavar="FILE",
                        help="write the products as one binary ListProductsResponse to FILE and exit "
                             "(the other peers load it, so every peer serves the same bytes)")
    args = parser.parse_args()

    out, messages, services, common = generate_stubs(args.proto_root)
    try:
        catalog = Catalog(messages, common, args.products, args.tenant)
        if args.export:
            with open(args.export, "wb") as file:
                file.write(messages.ListProductsResponse(products=catalog.ordered).SerializeToString())
            return
        if args.mode == "sync":
            run_sync(args, catalog, services)
        else:
            asyncio.run(run_aio(args, catalog, services))
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
