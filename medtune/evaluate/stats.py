"""Seeded percentile-bootstrap 95% confidence intervals over test items."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def _indices(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def _interval(values: np.ndarray) -> list[float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def summary(point: float, ci: list[float] | None, n: int) -> dict:
    return {"mean": float(point), "ci": ci, "n": n}


def mean_ci(values: Sequence[float], *, samples: int = 1000, seed: int = 0) -> dict:
    """Mean of per-item scores with its bootstrap interval (no interval for fewer than two items)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return summary(float("nan"), None, 0)
    if arr.size < 2:
        return summary(arr.mean(), None, 1)
    return summary(arr.mean(), _interval(arr[_indices(arr.size, samples, seed)].mean(axis=1)), arr.size)


def ratio_ci(numerators: Sequence[float], denominators: Sequence[float], *, samples: int = 1000, seed: int = 0,
             transform: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> dict:
    """sum(num)/sum(den) resampled by item (a token-weighted mean such as loss), optionally transformed."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if num.size == 0 or den.sum() == 0:
        return summary(float("nan"), None, int(num.size))
    point = float(_ratio(num, den, np.arange(num.size), transform))
    if num.size < 2:
        return summary(point, None, 1)
    return summary(point, _interval(_ratio(num, den, _indices(num.size, samples, seed), transform)), int(num.size))


def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """transform(sum num / sum den) over the items idx picks (one row of indices per resample, or one set)."""
    return transform(num[idx].sum(axis=-1) / den[idx].sum(axis=-1))


def statistic_ci(n: int, statistic: Callable[[np.ndarray], float], *, samples: int = 1000, seed: int = 0) -> dict:
    """Any corpus-level statistic of the items chosen by an index array (e.g. corpus BLEU)."""
    point = statistic(np.arange(n))
    if n < 2:
        return summary(point, None, n)
    return summary(point, _interval(np.array([statistic(row) for row in _indices(n, samples, seed)])), n)


def paired_delta_ci(after: Sequence[float], before: Sequence[float], *, samples: int = 1000, seed: int = 0) -> dict:
    """Mean per-item difference (tuned minus base on the same questions), resampled as pairs."""
    return mean_ci(np.asarray(after, dtype=float) - np.asarray(before, dtype=float), samples=samples, seed=seed)


def paired_ratio_delta_ci(after: tuple[Sequence[float], Sequence[float]], before: tuple[Sequence[float], Sequence[float]],
                          *, samples: int = 1000, seed: int = 0,
                          transform: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> dict:
    """transform(sum num / sum den) after minus before (e.g. answer perplexity, tuned minus base), each side a
    (numerators, denominators) pair per item, the same items resampled on both sides (a paired bootstrap)."""
    (num_a, den_a), (num_b, den_b) = ([np.asarray(v, dtype=float) for v in side] for side in (after, before))
    if num_a.size == 0 or num_a.size != num_b.size or den_a.sum() == 0 or den_b.sum() == 0:
        return summary(float("nan"), None, int(min(num_a.size, num_b.size)))

    def delta(idx: np.ndarray) -> np.ndarray:
        return _ratio(num_a, den_a, idx, transform) - _ratio(num_b, den_b, idx, transform)

    point = float(delta(np.arange(num_a.size)))
    if num_a.size < 2:
        return summary(point, None, 1)
    return summary(point, _interval(delta(_indices(num_a.size, samples, seed))), int(num_a.size))


def paired_test(a: Sequence[float], b: Sequence[float], *, samples: int = 1000, seed: int = 0) -> dict:
    """Is a better than b on the same items? Mean difference a - b with its paired bootstrap interval, and the
    two-sided Wilcoxon signed-rank p-value (zero differences dropped; no differences at all: p = 1)."""
    from scipy.stats import wilcoxon

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diff[np.abs(diff) < 1e-12] = 0.0  # scores averaged over seeds in another order: float noise is no difference
    result = mean_ci(diff, samples=samples, seed=seed)
    result["p"] = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
    return result


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: a family of tests keeps its 5% error rate when each is read at 0.05."""
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * float(pvalues[index])))  # monotone, as Holm requires
        adjusted[index] = running
    return adjusted
