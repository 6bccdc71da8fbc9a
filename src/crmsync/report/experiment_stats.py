"""The statistics of experiment results, on scipy (``scipy.stats``), no hand-rolled distributions.

* A proportion (conversion, win rate): Wilson score interval (``binomtest(...).proportion_ci``);
  the difference of two proportions: Newcombe's hybrid score interval (his method 10, built from
  the two Wilson intervals); the test: Pearson's chi-square on the 2x2 table without continuity
  correction (the pooled two-proportion z-test), or Fisher's exact test when an expected count
  is below 5.
* A mean (hours to first touch, days of cycle time): Student's t interval; the difference of two
  means: Welch's t-test (unequal variances) and its interval (``ttest_ind(equal_var=False)``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Comparison:
    difference: float  # treatment minus control
    interval: Interval
    p_value: float
    test: str


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    if n == 0:
        return Interval(math.nan, math.nan)
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(float(ci.low), float(ci.high))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    n = len(values)
    if n < 2:
        return Interval(math.nan, math.nan)
    if min(values) == max(values):  # no spread: the mean is exact (scipy would warn and divide by zero)
        return Interval(float(values[0]), float(values[0]))
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence_level=confidence)
    return Interval(float(ci.low), float(ci.high))


def compare_proportions(x1: int, n1: int, x0: int, n0: int, confidence: float = 0.95) -> Comparison | None:
    """Group 1 (treatment) against group 0 (control)."""
    if n1 == 0 or n0 == 0:
        return None
    p1, p0 = x1 / n1, x0 / n0
    w1, w0 = wilson(x1, n1, confidence), wilson(x0, n0, confidence)
    d = p1 - p0
    low = d - math.sqrt((p1 - w1.low) ** 2 + (w0.high - p0) ** 2)
    high = d + math.sqrt((w1.high - p1) ** 2 + (p0 - w0.low) ** 2)
    table = [[x1, n1 - x1], [x0, n0 - x0]]
    if (x1 + x0) in (0, n1 + n0):  # nobody, or everybody, converted: no evidence of a difference
        return Comparison(d, Interval(low, high), 1.0, "none (all equal)")
    expected = stats.contingency.expected_freq(table)
    if float(expected.min()) < 5:
        return Comparison(d, Interval(low, high), float(stats.fisher_exact(table).pvalue), "Fisher exact")
    chi2 = stats.chi2_contingency(table, correction=False)
    return Comparison(d, Interval(low, high), float(chi2.pvalue), "chi-square (z-test)")


def compare_means(treatment: Sequence[float], control: Sequence[float],
                  confidence: float = 0.95) -> Comparison | None:
    if len(treatment) < 2 or len(control) < 2:
        return None
    if min(treatment) == max(treatment) and min(control) == max(control):  # no spread in either group
        d = float(treatment[0]) - float(control[0])
        return Comparison(d, Interval(d, d), 1.0 if d == 0 else 0.0, "none (no variance)")
    with warnings.catch_warnings():  # one group without spread is a valid input; scipy warns about its moments
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(treatment, control, equal_var=False)
    ci = result.confidence_interval(confidence_level=confidence)
    d = sum(treatment) / len(treatment) - sum(control) / len(control)
    p = float(result.pvalue)
    return Comparison(d, Interval(float(ci.low), float(ci.high)), 1.0 if math.isnan(p) else p, "Welch t")
