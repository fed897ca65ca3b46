#!/usr/bin/env python3
"""Trains the demo ranking model and writes the demo model repository.

    deploy/models/ranker/config.pbtxt
    deploy/models/ranker/1/model.json   v1: small (control of the ranker-v2 experiment)
    deploy/models/ranker/2/model.ubj    v2: bigger, better (treatment)

The model scores one (user, item) pair: the probability that the user buys
the item when it is shown. Its input "features" is FP32 [N, 5], in this order
(feature store reference, type there, conversion to FP32):

    0  user_stats:purchases               int64   as is
    1  user_stats:spend                   double  as is (EUR)
    2  catalog_items:price                double  as is (EUR)
    3  catalog_items:in_stock             bool    1.0 true, 0.0 false
    4  catalog_items:available_quantity   int64   as is

A value the feature store does not answer with PRESENT (NOT_FOUND,
NULL_VALUE, OUTSIDE_MAX_AGE) is sent as NaN: XGBoost treats it as missing,
and the training data has such rows (new users, unknown items).

The data is synthetic and seeded: items are drawn the way the catalog's demo
data makes its products (DemoCatalog.swift: category price ranges, prices
ending in .99, 85% in stock with 1-200 units), users from a spread of
purchase counts and order values; a user tends to buy items priced near
their usual order value, in stock, and with deep stock. Same output on
every run (xgboost 1.7.x, one thread, exact tree method).

    "$(scripts/python-env.sh inference)/bin/python" scripts/train-demo-ranker.py
"""
import pathlib
import shutil

import numpy as np
import xgboost as xgb
from sklearn.metrics import log_loss, roc_auc_score

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPOSITORY = ROOT / "deploy" / "models"
MODEL = REPOSITORY / "ranker"

FEATURES = [
    ("user_stats:purchases", "int64"),
    ("user_stats:spend", "double"),
    ("catalog_items:price", "double"),
    ("catalog_items:in_stock", "bool"),
    ("catalog_items:available_quantity", "int64"),
]

# DemoCatalog.categories' price ranges (EUR).
PRICE_RANGES = [(12, 240), (40, 900), (25, 600), (20, 1200), (15, 450), (8, 350), (18, 280), (20, 420), (6, 40), (9, 120)]

VERSIONS = {
    # version: (file, boosting rounds, depth, learning rate)
    1: ("model.json", 12, 3, 0.3),
    2: ("model.ubj", 60, 5, 0.15),
}
SIZE_LIMIT = 200_000


def users(rng, count):
    """user_stats rows: purchases and total spend; 12% have no row (NaN)."""
    purchases = rng.negative_binomial(1.2, 0.15, size=count).astype(np.float64)
    order_value = np.exp(rng.normal(np.log(70.0), 0.8, size=count))
    spend = np.round(purchases * order_value * np.exp(rng.normal(0.0, 0.15, size=count)), 2)
    unknown = rng.random(count) < 0.12
    purchases[unknown] = np.nan
    spend[unknown] = np.nan
    # A user's taste when the store knows nothing about them.
    taste = np.where(unknown, np.exp(rng.normal(np.log(70.0), 0.8, size=count)), order_value)
    return purchases, spend, taste


def items(rng, count):
    """catalog_items rows as DemoCatalog makes products; 2% unknown (NaN)."""
    ranges = np.array(PRICE_RANGES, dtype=np.float64)[rng.integers(0, len(PRICE_RANGES), size=count)]
    price = np.floor(ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * rng.random(count)) + 0.99
    roll = rng.integers(0, 100, size=count)
    in_stock = (roll < 85).astype(np.float64)
    quantity = np.where(in_stock == 1.0, 1 + rng.integers(0, 200, size=count), 0).astype(np.float64)
    unknown = rng.random(count) < 0.02
    for column in (price, in_stock, quantity):
        column[unknown] = np.nan
    return price, in_stock, quantity


def impressions(rng, count):
    """(user, item) pairs shown, and whether each led to a purchase."""
    purchases, spend, taste = users(rng, 5000)
    price, in_stock, quantity = items(rng, 3000)
    u = rng.integers(0, len(purchases), size=count)
    i = rng.integers(0, len(price), size=count)
    x = np.column_stack([purchases[u], spend[u], price[i], in_stock[i], quantity[i]]).astype(np.float32)

    known_price = np.nan_to_num(price[i], nan=80.0)
    distance = np.abs(np.log(known_price / taste[u]))
    logit = (-1.6
             + 0.35 * np.log1p(np.nan_to_num(purchases[u], nan=0.0))
             - 1.1 * distance
             - 2.5 * (np.nan_to_num(in_stock[i], nan=1.0) == 0.0)
             + 0.25 * np.log1p(np.nan_to_num(quantity[i], nan=20.0))
             - 0.12 * np.log(known_price))
    y = (rng.random(count) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return x, y


def train(x, y, rounds, depth, eta):
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": eta, "min_child_weight": 5,
              "tree_method": "exact", "nthread": 1, "seed": 0, "eval_metric": "logloss"}
    return xgb.train(params, xgb.DMatrix(x, label=y, missing=np.nan), num_boost_round=rounds)


def config(versions):
    lines = [
        "# The demo ranker: probability that a user buys an item when shown it.",
        "# Written by scripts/train-demo-ranker.py; see deploy/models/README.md.",
        "#",
        "# Input \"features\", FP32 [N, 5], one row per (user, item); NaN = missing:",
    ]
    lines += [f"#   {index}  {name} ({kind})" for index, (name, kind) in enumerate(FEATURES)]
    lines += [
        "#",
        "# Versions follow the experimentation service's ranker-v2 demo experiment:",
        "# variation \"control\" ({\"ranker_version\": \"1\"}) is version 1, \"treatment\"",
        "# ({\"ranker_version\": \"2\"}) is version 2. Callers that name no version are",
        "# split 50/50 by the routing parameter, sticky per request parameter routing_key.",
        "# No default_model_filename: 1/ holds model.json and 2/ model.ubj.",
        'name: "ranker"',
        'backend: "xgboost"',
        "max_batch_size: 1000",
        f'input [ {{ name: "features" data_type: TYPE_FP32 dims: [ {len(FEATURES)} ] }} ]',
        'output [ { name: "score" data_type: TYPE_FP32 dims: [ 1 ] } ]',
        f"version_policy {{ latest {{ num_versions: {len(versions)} }} }}",
        "dynamic_batching { max_queue_delay_microseconds: 200 }",
        "response_cache { enable: true }",
        'parameters { key: "output" value { string_value: "probability" } }',
        'parameters { key: "routing" value { string_value: "1:50,2:50" } }',
    ]
    return "\n".join(lines) + "\n"


def main():
    rng = np.random.default_rng(20260302)
    x, y = impressions(rng, 40_000)
    x_test, y_test = impressions(np.random.default_rng(20260303), 20_000)
    print(f"training rows {len(y)}, purchase rate {y.mean():.3f}; held-out rows {len(y_test)}")

    if MODEL.exists():
        shutil.rmtree(MODEL)
    MODEL.mkdir(parents=True)
    held_out = xgb.DMatrix(x_test, missing=np.nan)
    for version, (filename, rounds, depth, eta) in VERSIONS.items():
        booster = train(x, y, rounds, depth, eta)
        (MODEL / str(version)).mkdir()
        path = MODEL / str(version) / filename
        booster.save_model(str(path))
        reloaded = xgb.Booster(model_file=str(path))
        p = reloaded.predict(held_out)
        assert np.array_equal(p, booster.predict(held_out))
        print(f"version {version}: {rounds} trees, depth {depth}, {path.stat().st_size} bytes; "
              f"held-out AUC {roc_auc_score(y_test, p):.4f}, log loss {log_loss(y_test, p):.4f}")
    (MODEL / "config.pbtxt").write_text(config(VERSIONS))

    total = sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file())
    print(f"wrote {MODEL.relative_to(ROOT)}: {total} bytes")
    assert total < SIZE_LIMIT, f"the demo repository should stay under {SIZE_LIMIT} bytes"


if __name__ == "__main__":
    main()
