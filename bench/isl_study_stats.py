"""Statistics of the ISL study (bench/isl_study.py), in plain Python + numpy so Debian's packages suffice: Student-t
quantiles (through the regularised incomplete beta function), paired differences with 95% t intervals, exact
sign-flip permutation p-values, Holm's step-down correction, and a seed bootstrap of "the budget at which KD
matches ISL". Tested against scipy by bench/isl_study_stats_test.py (ctest Bench.IslStudyStats)."""
import itertools
import math

import numpy as np


def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbeta) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbeta) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_ppf(p, df):
    """The p-quantile of Student's t (bisection on t_cdf; |error| < 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_ppf: p must be in (0, 1), got {p}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def mean_sd(xs):
    """(mean, sample sd) of a list; sd is nan for fewer than 2 values."""
    xs = np.asarray(xs, dtype=float)
    if len(xs) == 0:
        return float("nan"), float("nan")
    return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else float("nan")


def t_interval(xs, level=0.95):
    """(mean, low, high): the two-sided `level` t interval of the mean; (mean, nan, nan) below 2 values."""
    m, sd = mean_sd(xs)
    n = len(xs)
    if n < 2:
        return m, float("nan"), float("nan")
    half = t_ppf(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return m, m - half, m + half


def sign_flip_p(diffs):
    """Two-sided exact sign-flip permutation p-value of the mean of paired differences: the share of the 2^n sign
    assignments whose |mean| reaches the observed |mean| (the observed assignment and its negation included, so
    p >= 2 / 2^n; 1 for all-zero differences). Exact enumeration up to n = 20."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        return float("nan")
    if n > 20:
        raise ValueError("sign_flip_p: exact enumeration is limited to 20 pairs")
    observed = abs(d.mean())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    means = np.abs(signs @ d) / n
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def holm(pvalues):
    """Holm's step-down adjusted p-values (same order as given; nan stays nan and is not counted)."""
    idx = [i for i, p in enumerate(pvalues) if p == p]
    m = len(idx)
    adjusted = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def paired(a, b):
    """Paired comparison of two {seed: value} maps on their common seeds: dict with n, mean difference (a - b), its
    95% t interval, the sign-flip p-value and the differences themselves."""
    seeds = sorted(set(a) & set(b))
    d = [a[s] - b[s] for s in seeds]
    m, lo, hi = t_interval(d)
    return {"n": len(d), "seeds": seeds, "diffs": d, "mean": m, "low": lo, "high": hi, "p": sign_flip_p(d) if d else float("nan")}


def matching_budget(budgets, kd_means, target):
    """The (fractional) budget at which KD's mean accuracy, linearly interpolated between the budgets run, first
    reaches `target`; inf when it never does, budgets[0] when it already does at the smallest."""
    for i, (b, m) in enumerate(zip(budgets, kd_means)):
        if m >= target:
            if i == 0:
                return float(b)
            b0, m0 = budgets[i - 1], kd_means[i - 1]
            return float(b0 + (b - b0) * (target - m0) / (m - m0))
    return float("inf")


def bootstrap_matching_budget(budgets, kd_by_budget, isl_values, reps=2000, seed=0):
    """The budget at which KD matches ISL's mean accuracy `isl_values` (ISL at one budget, one value per seed), with a
    95% percentile interval from resampling the seeds (KD's per budget and ISL's independently). kd_by_budget:
    {budget: [values]}. Returns (estimate, low, high)."""
    rng = np.random.default_rng(seed)
    budgets = sorted(budgets)
    kd = [np.asarray(kd_by_budget[b], dtype=float) for b in budgets]
    isl = np.asarray(isl_values, dtype=float)
    est = matching_budget(budgets, [k.mean() for k in kd], isl.mean())
    draws = []
    for _ in range(reps):
        km = [rng.choice(k, size=len(k)).mean() for k in kd]
        draws.append(matching_budget(budgets, km, rng.choice(isl, size=len(isl)).mean()))
    draws = np.sort(np.asarray(draws))
    # "nearest": the draws may hold inf (KD never matches), which interpolation would turn into nan.
    return est, float(np.quantile(draws, 0.025, method="nearest")), float(np.quantile(draws, 0.975, method="nearest"))
