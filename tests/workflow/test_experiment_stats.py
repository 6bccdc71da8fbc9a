"""The experiment statistics against published values.

* Wilson score intervals: Newcombe (1998), "Two-sided confidence intervals for the single
  proportion", Statistics in Medicine 17, Table I: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to
  0.1605; 0/20 -> 0 to 0.1611.
* Difference of proportions: Newcombe (1998), "Interval estimation for the difference between
  independent proportions", Statistics in Medicine 17, example (a): 56/70 - 48/80 = 0.2000, hybrid
  score interval (method 10) 0.0524 to 0.3339.
* Welch's t-test: the first example of Wikipedia's "Welch's t-test" article: t = -2.46, df = 24.9,
  p = 0.021.
* Fisher's exact test: Fisher's lady tasting tea, 3 of 4 cups right each way: two-sided p = 0.4857
  (= 34/70).
* The pooled two-proportion z-test, computed from its formula with the standard normal tail.
"""

from __future__ import annotations

import math

import pytest

from crmsync.report.experiment_stats import compare_means, compare_proportions, mean_interval, wilson


@pytest.mark.parametrize(("x", "n", "low", "high"), [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                                     (0, 20, 0.0, 0.1611)])
def test_wilson_interval_matches_newcombe(x: int, n: int, low: float, high: float) -> None:
    ci = wilson(x, n)
    assert ci.low == pytest.approx(low, abs=5e-5) and ci.high == pytest.approx(high, abs=5e-5)


def test_difference_of_proportions_matches_newcombe_method_10() -> None:
    c = compare_proportions(56, 70, 48, 80)
    assert c is not None
    assert c.difference == pytest.approx(0.2)
    assert c.interval.low == pytest.approx(0.0524, abs=5e-5) and c.interval.high == pytest.approx(0.3339, abs=5e-5)


def test_proportion_test_is_the_pooled_z_test() -> None:
    c = compare_proportions(56, 70, 48, 80)
    assert c is not None and c.test.startswith("chi-square")
    pooled = (56 + 48) / 150
    z = (56 / 70 - 48 / 80) / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    assert c.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert c.p_value == pytest.approx(0.00805, abs=5e-5)


def test_small_counts_use_fisher_exact() -> None:
    c = compare_proportions(3, 4, 1, 4)
    assert c is not None and c.test == "Fisher exact"
    assert c.p_value == pytest.approx(34 / 70, rel=1e-9)  # 0.4857


def test_welch_t_test_matches_the_textbook_example() -> None:
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    c = compare_means(a1, a2)
    assert c is not None and c.test == "Welch t"
    assert c.p_value == pytest.approx(0.021, abs=5e-4)
    assert c.difference == pytest.approx(sum(a1) / 15 - sum(a2) / 15)
    assert c.interval.low < c.difference < c.interval.high < 0  # the difference excludes 0 at 95%


def test_mean_interval_is_the_student_t_interval() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.776445
    ci = mean_interval(values)
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert ci.low == pytest.approx(3 - half) and ci.high == pytest.approx(3 + half)


def test_degenerate_inputs_give_no_comparison() -> None:
    assert compare_proportions(0, 0, 3, 10) is None
    assert compare_means([1.0], [1.0, 2.0]) is None
    same = compare_proportions(0, 50, 0, 50)
    assert same is not None and same.p_value == 1.0
