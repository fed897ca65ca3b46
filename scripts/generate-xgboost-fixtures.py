#!/usr/bin/env python3
"""XGBoost model fixtures for the inference service, with reference predictions.

Trains three small models on seeded synthetic data with PyPI xgboost 1.7.x and
writes them to Tests/PlatformTests/Fixtures/xgboost/:

  classifier.json, classifier.ubj   binary:logistic, 20 trees, depth 4, 8 features
  regressor.json, regressor.ubj     reg:squarederror, 15 trees, depth 3, 6 features
  multiclass.json, multiclass.ubj   multi:softprob, 3 classes x 12 rounds, depth 3, 5 features
  <name>.expected.json              inputs and what Booster.predict answers for them
  broken.json                       a truncated copy of classifier.json (load must fail)

<name>.expected.json holds
  {"model": "classifier", "objective": "binary:logistic", "xgboost": "1.7.6",
   "features": 8,
   "inputs": [[f0, ..., f7], ...],   50 rows; null is a missing value (NaN)
   "margin": [...],                  Booster.predict(..., output_margin=True), one per row
   "probability": [...]}             Booster.predict(...), classifier only
The regressor has "prediction" instead of "probability" (for squared error the
two outputs are the same numbers). The multiclass model has 3 values per row
in "margin" and "probability", row after row. Inputs are multiples of 1/256, so they are
exact as FP32 and in decimal; predictions are FP32 values written as doubles.
Predictions use DMatrix(inputs, missing=NaN), as the server's dense path does.

The output is committed, so tests never need xgboost. To regenerate:

    "$(scripts/python-env.sh inference)/bin/python" scripts/generate-xgboost-fixtures.py
"""
import json
import math
import pathlib

import numpy as np
import xgboost as xgb

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "PlatformTests" / "Fixtures" / "xgboost"
ROWS_TO_CHECK = 50


def quantized(values):
    """Rounded to multiples of 1/256: exact in FP32 and short in decimal."""
    return (np.round(values * 256.0) / 256.0).astype(np.float32)


def with_missing(rng, x, fraction):
    x = x.copy()
    x[rng.random(x.shape) < fraction] = np.nan
    return x


def classifier_data(rng, rows):
    x = quantized(rng.normal(0.0, 1.5, size=(rows, 8)))
    signal = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.9 * x[:, 2] * x[:, 3] + np.sin(2.0 * x[:, 4]) + 0.3 * x[:, 5]
    y = (signal + rng.normal(0.0, 0.7, size=rows) > 0.2).astype(np.float32)
    return with_missing(rng, x, 0.08), y


def regressor_data(rng, rows):
    x = quantized(rng.uniform(-4.0, 4.0, size=(rows, 6)))
    y = (2.0 * x[:, 0] + np.abs(x[:, 1]) - 1.5 * x[:, 2] * (x[:, 3] > 0) + 0.5 * x[:, 4] ** 2
         + rng.normal(0.0, 0.5, size=rows)).astype(np.float32)
    return with_missing(rng, x, 0.05), y


def multiclass_data(rng, rows):
    x = quantized(rng.normal(0.0, 1.5, size=(rows, 5)))
    scores = np.stack([x[:, 0] + 0.5 * x[:, 1], x[:, 2] - x[:, 0], np.abs(x[:, 3]) - 1.0 + 0.3 * x[:, 4]], axis=1)
    y = np.argmax(scores + rng.normal(0.0, 0.4, size=scores.shape), axis=1).astype(np.float32)
    return with_missing(rng, x, 0.08), y


def check_rows(rng, features):
    """Rows the fixture checks: random rows, some cells missing, one row all
    missing, one all zeros, and a few large magnitudes."""
    x = quantized(rng.normal(0.0, 1.5, size=(ROWS_TO_CHECK, features)))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[0, :] = np.nan
    x[1, :] = 0.0
    x[2, :] = 64.0
    x[3, :] = -64.0
    return x


def train(name, params, rounds, x, y):
    booster = xgb.train({**params, "nthread": 1, "seed": 0, "tree_method": "exact"},
                        xgb.DMatrix(x, label=y, missing=np.nan), num_boost_round=rounds)
    for suffix in ("json", "ubj"):
        booster.save_model(str(OUT / f"{name}.{suffix}"))
    return booster


def as_json_row(row):
    return [None if math.isnan(v) else float(v) for v in row]


def write_expected(name, booster, objective, inputs, probability_key):
    matrix = xgb.DMatrix(inputs, missing=np.nan)
    margin = booster.predict(matrix, output_margin=True)
    transformed = booster.predict(matrix)
    assert margin.dtype == np.float32 and transformed.dtype == np.float32
    # Both saved formats load back to the same predictions, bit for bit.
    for suffix in ("json", "ubj"):
        loaded = xgb.Booster(model_file=str(OUT / f"{name}.{suffix}"))
        again = xgb.DMatrix(inputs, missing=np.nan)
        assert np.array_equal(loaded.predict(again, output_margin=True), margin), suffix
        assert np.array_equal(loaded.predict(again), transformed), suffix
    expected = {
        "model": name,
        "objective": objective,
        "xgboost": xgb.__version__,
        "features": int(inputs.shape[1]),
        "inputs": [as_json_row(row) for row in inputs],
        "margin": [float(v) for v in margin.reshape(-1)],
        probability_key: [float(v) for v in transformed.reshape(-1)],
    }
    (OUT / f"{name}.expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")
    return margin, transformed


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20260301)

    x, y = classifier_data(rng, 600)
    classifier = train("classifier", {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3}, 20, x, y)
    margin, probability = write_expected("classifier", classifier, "binary:logistic", check_rows(rng, 8), "probability")
    assert np.allclose(probability, 1.0 / (1.0 + np.exp(-margin.astype(np.float64))), rtol=1e-6)

    x, y = regressor_data(rng, 500)
    regressor = train("regressor", {"objective": "reg:squarederror", "max_depth": 3, "eta": 0.3}, 15, x, y)
    margin, prediction = write_expected("regressor", regressor, "reg:squarederror", check_rows(rng, 6), "prediction")
    assert np.array_equal(margin, prediction)

    x, y = multiclass_data(rng, 600)
    multiclass = train("multiclass", {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3}, 12, x, y)
    margin, probability = write_expected("multiclass", multiclass, "multi:softprob", check_rows(rng, 5), "probability")
    assert margin.shape == (ROWS_TO_CHECK, 3) and np.allclose(probability.sum(axis=1), 1.0, rtol=1e-6)

    # Cut mid-document: a JSON parser must reject it.
    text = (OUT / "classifier.json").read_text()
    cut = text[: len(text) // 3]
    (OUT / "broken.json").write_text(cut)
    try:
        json.loads(cut)
        raise SystemExit("broken.json parses; cut it elsewhere")
    except json.JSONDecodeError:
        pass
    try:
        xgb.Booster(model_file=str(OUT / "broken.json"))
        raise SystemExit("xgboost loaded broken.json")
    except xgb.core.XGBoostError:
        pass

    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
