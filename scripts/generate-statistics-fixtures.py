#!/usr/bin/env python3
"""Reference values for the experimentation statistics, computed with scipy.

Writes Tests/PlatformTests/Fixtures/experiment_statistics.json, which
ExperimentStatisticsTests checks the Swift implementation against. Needs
numpy and scipy (pip install numpy scipy); the output is committed, so the
test command never needs them.

    python3 scripts/generate-statistics-fixtures.py
"""
import json
import math
import os

import numpy as np
from scipy import stats

rng = np.random.default_rng(20261124)


def rounded(values):
    # Rounded once, then every reference value is computed from the rounded data.
    return [round(float(v), 6) for v in values]


def welch(control, treatment, alpha):
    c, t = np.array(control), np.array(treatment)
    nc, nt = len(c), len(t)
    mc, mt = c.mean(), t.mean()
    vc, vt = c.var(ddof=1) / nc, t.var(ddof=1) / nt
    df = (vc + vt) ** 2 / (vc ** 2 / (nc - 1) + vt ** 2 / (nt - 1))
    p = stats.ttest_ind(t, c, equal_var=False).pvalue
    lift = (mt - mc) / mc
    se = math.sqrt(vt / mc ** 2 + mt ** 2 * vc / mc ** 4)
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return {"lift": lift, "lower": lift - half, "upper": lift + half, "p_value": float(p), "df": df}


def sequential(control, treatment, alpha, tuning=5000.0):
    # Asymptotic confidence sequence (Waudby-Smith et al.), GrowthBook's form.
    c, t = np.array(control), np.array(treatment)
    nc, nt = len(c), len(t)
    mc, mt = c.mean(), t.mean()
    vc, vt = c.var(ddof=1) / nc, t.var(ddof=1) / nt
    lift = (mt - mc) / mc
    var_lift = vt / mc ** 2 + mt ** 2 * vc / mc ** 4
    n = nc + nt
    l = -2 * math.log(alpha)
    rho = math.sqrt((l + math.log(l + 1)) / tuning)
    s2 = var_lift * n
    half = math.sqrt(s2 * 2 * (n * rho ** 2 + 1) / (n ** 2 * rho ** 2) * math.log(math.sqrt(n * rho ** 2 + 1) / alpha))
    p = min(1.0, math.sqrt(n * rho ** 2 + 1) * math.exp(-lift ** 2 * n ** 2 * rho ** 2 / (2 * s2 * (n * rho ** 2 + 1))))
    return {"lift": lift, "lower": lift - half, "upper": lift + half, "p_value": p}


cases = []


def lift_case(name, control, treatment, alpha=0.05):
    control, treatment = rounded(control), rounded(treatment)
    c, t = np.array(control), np.array(treatment)
    cases.append({
        "name": name, "kind": "lift", "alpha": alpha, "control": control, "treatment": treatment,
        "control_mean": c.mean(), "control_variance": c.var(ddof=1),
        "treatment_mean": t.mean(), "treatment_variance": t.var(ddof=1),
        "welch": welch(control, treatment, alpha), "sequential": sequential(control, treatment, alpha),
    })


lift_case("small samples, unequal variances", rng.normal(10, 2, 30), rng.normal(11, 4, 35))
lift_case("clear effect", rng.normal(5, 1, 400), rng.normal(5.4, 1.2, 400))
lift_case("no effect, unequal sizes", rng.exponential(3, 200), rng.exponential(3, 800), alpha=0.1)
lift_case("revenue-like, many zeros", rng.binomial(1, 0.1, 2000) * rng.gamma(2, 20, 2000),
          rng.binomial(1, 0.11, 2000) * rng.gamma(2, 20, 2000))
lift_case("tight alpha", rng.normal(100, 15, 500), rng.normal(102, 15, 500), alpha=0.01)

# CUPED: a pre-period covariate strongly correlated with the metric.
covariate_c, covariate_t = rng.normal(50, 10, 600), rng.normal(50, 10, 600)
metric_c = rounded(0.8 * covariate_c + rng.normal(10, 4, 600))
metric_t = rounded(0.8 * covariate_t + rng.normal(11, 4, 600))
covariate_c, covariate_t = rounded(covariate_c), rounded(covariate_t)
ys = np.array(metric_c + metric_t)
xs = np.array(covariate_c + covariate_t)
theta = float(np.cov(ys, xs, ddof=1)[0, 1] / xs.var(ddof=1))
adjusted_c = list(np.array(metric_c) - theta * (np.array(covariate_c) - xs.mean()))
adjusted_t = list(np.array(metric_t) - theta * (np.array(covariate_t) - xs.mean()))
cases.append({
    "name": "cuped", "kind": "cuped", "alpha": 0.05,
    "control": metric_c, "control_covariate": covariate_c, "treatment": metric_t, "treatment_covariate": covariate_t,
    "theta": theta,
    "adjusted_control_mean": float(np.mean(adjusted_c)), "adjusted_control_variance": float(np.var(adjusted_c, ddof=1)),
    "adjusted_treatment_mean": float(np.mean(adjusted_t)), "adjusted_treatment_variance": float(np.var(adjusted_t, ddof=1)),
    "welch": welch(adjusted_c, adjusted_t, 0.05),
})

for name, observed, weights in [
    ("srm: balanced", [5000, 5030], [0.5, 0.5]),
    ("srm: mismatch", [5000, 5300], [0.5, 0.5]),
    ("srm: three arms, uneven weights", [2010, 2950, 5040], [0.2, 0.3, 0.5]),
    ("srm: three arms, mismatch", [3000, 3250, 2900], [1 / 3, 1 / 3, 1 / 3]),
]:
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    cases.append({"name": name, "kind": "srm", "observed": observed, "weights": weights,
                  "p_value": float(stats.chisquare(observed, expected).pvalue)})

quantiles = [{"p": p, "df": df, "t": float(stats.t.ppf(p, df))}
             for p in [0.9, 0.95, 0.975, 0.995, 0.05] for df in [1.5, 3, 12.7, 58.2, 1000, 1e6]]

path = os.path.join(os.path.dirname(__file__), "..", "Tests", "PlatformTests", "Fixtures", "experiment_statistics.json")
with open(path, "w") as out:
    json.dump({"generator": "scripts/generate-statistics-fixtures.py", "scipy": __import__("scipy").__version__,
               "cases": cases, "t_quantiles": quantiles}, out, indent=None, separators=(",", ":"))
print(f"wrote {len(cases)} cases and {len(quantiles)} quantiles to {os.path.normpath(path)}")
