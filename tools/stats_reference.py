#!/usr/bin/env python3
"""Reference values for the statistics of src/report/stats.rs (tests/stats.rs).

Computed with the standard Python implementations, independently of the Rust
code: Wilson intervals by statsmodels, exact McNemar p-values by statsmodels
and scipy, clustered standard errors by statsmodels' cluster-robust OLS on a
constant (no small-sample correction) and by numpy from the formula, the
power figures from scipy's normal quantiles, and a percentile bootstrap by
scipy (another RNG, so only approximately comparable).

Needs no network once the packages are installed. To rerun:

    python3 -m venv target/py
    target/py/bin/pip install scipy statsmodels numpy
    target/py/bin/python tools/stats_reference.py

The values in tests/stats.rs were printed by this script with Python 3.11.7,
numpy 2.4.6, scipy 1.17.1 and statsmodels 0.15.0.
"""

import numpy as np
import scipy
import statsmodels
import statsmodels.api as sm
from scipy.stats import binomtest, bootstrap, norm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint


def wilson_cases():
    print("# Wilson 95%: statsmodels proportion_confint(k, n, alpha=0.05, method='wilson')")
    for k, n in [(0, 24), (24, 24), (5, 24), (9, 24), (0, 1034), (1034, 1034), (866, 1034), (465, 1034), (0, 1), (1, 1)]:
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        print(f"({k}, {n}, {lo!r}, {hi!r}),")


def mcnemar_cases():
    print("# exact McNemar: statsmodels mcnemar([[0, b], [c, 0]], exact=True).pvalue; scipy binomtest(b, b + c, 0.5)")
    for b, c in [(0, 0), (21, 15), (87, 57), (4, 0), (1, 0), (10, 10), (5, 0), (0, 7), (120, 80), (300, 200)]:
        p = mcnemar([[0, b], [c, 0]], exact=True).pvalue
        q = binomtest(b, b + c, 0.5).pvalue if b + c > 0 else float("nan")
        print(f"({b}, {c}, {float(p)!r}),  # scipy: {float(q)!r}")


def power_cases():
    k = norm.ppf(0.975) + norm.ppf(0.8)
    print(f"# z_0.975 = {float(norm.ppf(0.975))!r}, z_0.8 = {float(norm.ppf(0.8))!r}, sum = {float(k)!r}")
    print("# paired MDE = (z_0.975 + z_0.8) * sqrt((b + c) / n) / sqrt(n)")
    for b, c, n in [(87, 57, 1034), (21, 15, 1034), (4, 0, 24)]:
        mde = k * np.sqrt((b + c) / n / n)
        # Connor (1987): n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2, solved for d.
        psi = (b + c) / n
        f = lambda d: np.sqrt(n) * d - norm.ppf(0.975) * np.sqrt(psi) - norm.ppf(0.8) * np.sqrt(max(psi - d * d, 0.0))
        connor = scipy.optimize.brentq(f, 1e-12, np.sqrt(psi))
        print(f"({b}, {c}, {n}, {float(mde)!r}),  # Connor 1987: {float(connor)!r}")
    print("# unpaired MDE = (z_0.975 + z_0.8) * sqrt(2 p (1 - p) / n)")
    for x, n in [(866, 1034), (5, 24)]:
        p = x / n
        print(f"({x}, {n}, {float(k * np.sqrt(2 * p * (1 - p) / n))!r}),")


def clustered_data():
    """The data of the clustered tests: 200 questions in 20 databases of 10,
    with whole databases wrong (within-database correlation)."""
    i = np.arange(200)
    c = i // 10
    a = ((c % 4 != 0) & (i % 5 != 0)).astype(float)
    b = ((c % 3 != 0) & (i % 4 != 1)).astype(float)
    return i, c, a, b


def clustered_se(x, groups, center):
    s = np.bincount(groups, weights=x - center)
    return np.sqrt((s**2).sum()) / len(x)


def ols_cluster_se(x, groups):
    fit = sm.OLS(x, np.ones(len(x))).fit(cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False})
    return fit.bse[0]


def clustered_cases():
    i, c, a, b = clustered_data()
    d = a - b
    print("# clustered SE (Miller 2024 appendix A): numpy formula; statsmodels OLS cluster, use_correction=False")
    for name, x in [("a", a), ("b", b), ("a-b", d)]:
        print(f"{name}: mean {float(x.mean())!r} se {float(clustered_se(x, c, x.mean()))!r} statsmodels {float(ols_cluster_se(x, c))!r}")
        print(f"   unclustered (HC0) {float(sm.OLS(x, np.ones(len(x))).fit(cov_type='HC0').bse[0])!r}")
        print(f"   singletons {float(clustered_se(x, i, x.mean()))!r}")
    print(f"a-b about 0 (null, for the MDE): {float(clustered_se(d, c, 0.0))!r}")
    print(f"discordant: a only {int(((a == 1) & (b == 0)).sum())} b only {int(((a == 0) & (b == 1)).sum())}")


def bootstrap_cases():
    print("# percentile paired bootstrap, scipy.stats.bootstrap(n_resamples=10000, method='percentile', rng=0)")
    for b, c, n in [(87, 57, 1034), (21, 15, 1034)]:
        d = np.array([1] * b + [-1] * c + [0] * (n - b - c), dtype=float)
        r = bootstrap((d,), np.mean, n_resamples=10000, method="percentile", rng=np.random.default_rng(0))
        se = np.sqrt(((b + c) / n - ((b - c) / n) ** 2) / n)
        ci = r.confidence_interval
        print(f"({b}, {c}, {n}): scipy [{float(ci.low)!r}, {float(ci.high)!r}], plug-in se {float(se)!r}")


if __name__ == "__main__":
    print(f"# numpy {np.__version__}, scipy {scipy.__version__}, statsmodels {statsmodels.__version__}")
    wilson_cases()
    mcnemar_cases()
    power_cases()
    clustered_cases()
    bootstrap_cases()
