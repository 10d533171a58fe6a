#!/usr/bin/python3
"""Tests of bench/isl_study_stats.py (ctest Bench.IslStudyStats): t quantiles and intervals against scipy, exact
sign-flip p-values on cases counted by hand, Holm's correction on a textbook example, the matching budget."""
import math
import os
import sys
import unittest

import numpy as np
from scipy import stats as sps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import isl_study_stats as st  # noqa: E402


class TDistribution(unittest.TestCase):
    def test_quantiles_match_scipy(self):
        for df in (1, 2, 3, 4, 5, 9, 30, 100):
            for p in (0.6, 0.9, 0.975, 0.995, 0.025):
                self.assertAlmostEqual(st.t_ppf(p, df), sps.t.ppf(p, df), places=7, msg=f"df {df} p {p}")
        self.assertAlmostEqual(st.t_cdf(1.3, 7), sps.t.cdf(1.3, 7), places=10)
        self.assertAlmostEqual(st.t_cdf(-2.1, 3), sps.t.cdf(-2.1, 3), places=10)

    def test_interval_matches_scipy(self):
        xs = [1.10, 0.96, 1.13, 0.7, 1.4]
        m, lo, hi = st.t_interval(xs)
        want = sps.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=sps.sem(xs))
        self.assertAlmostEqual(m, np.mean(xs), places=12)
        self.assertAlmostEqual(lo, want[0], places=7)
        self.assertAlmostEqual(hi, want[1], places=7)
        # The numbers: paired differences 1.10 / 0.96 / 1.13 give [0.84, 1.29].
        m, lo, hi = st.t_interval([1.10, 0.96, 1.13])
        self.assertEqual((round(lo, 2), round(hi, 2)), (0.84, 1.29))
        self.assertTrue(math.isnan(st.t_interval([1.0])[1]))


class SignFlip(unittest.TestCase):
    def test_all_same_sign_is_two_over_two_to_the_n(self):
        self.assertAlmostEqual(st.sign_flip_p([0.5, 1.0, 0.2, 0.3, 0.9]), 2 / 32)
        self.assertAlmostEqual(st.sign_flip_p([-1.0, -2.0, -3.0]), 2 / 8)

    def test_counted_by_hand(self):
        # d = (3, -1, 1): sums over the 8 sign vectors: ±3±1±1 -> |sum| in {5,3,3,1,1,3,3,5}; observed |3-1+1| = 3:
        # 6 of 8 reach it.
        self.assertAlmostEqual(st.sign_flip_p([3.0, -1.0, 1.0]), 6 / 8)
        self.assertEqual(st.sign_flip_p([0.0, 0.0]), 1.0)


class Holm(unittest.TestCase):
    def test_textbook_example(self):
        # p = (0.01, 0.04, 0.03, 0.005): sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)
        got = st.holm([0.01, 0.04, 0.03, 0.005])
        for g, w in zip(got, [0.03, 0.06, 0.06, 0.02]):
            self.assertAlmostEqual(g, w)
        got = st.holm([0.5, float("nan"), 0.2])
        self.assertAlmostEqual(got[0], 0.5)
        self.assertTrue(math.isnan(got[1]))
        self.assertAlmostEqual(got[2], 0.4)


class Paired(unittest.TestCase):
    def test_uses_common_seeds_only(self):
        r = st.paired({0: 90.0, 1: 91.0, 2: 92.0, 3: 50.0}, {0: 89.0, 1: 89.5, 2: 91.0})
        self.assertEqual(r["n"], 3)
        self.assertEqual(r["diffs"], [1.0, 1.5, 1.0])
        self.assertAlmostEqual(r["mean"], 3.5 / 3)
        self.assertAlmostEqual(r["p"], 2 / 8)


class MatchingBudget(unittest.TestCase):
    def test_interpolates_between_budgets(self):
        self.assertAlmostEqual(st.matching_budget([2, 3, 6], [88.0, 90.0, 91.0], 89.0), 2.5)
        self.assertAlmostEqual(st.matching_budget([2, 3, 6], [88.0, 90.0, 91.0], 90.5), 4.5)
        self.assertEqual(st.matching_budget([2, 3, 6], [88.0, 90.0, 91.0], 87.0), 2.0)
        self.assertEqual(st.matching_budget([2, 3, 6], [88.0, 90.0, 91.0], 92.0), float("inf"))

    def test_bootstrap_interval_holds_the_estimate(self):
        kd = {2: [88.0, 88.2, 87.8], 3: [90.0, 90.1, 89.9], 6: [91.0, 91.2, 90.8]}
        est, lo, hi = st.bootstrap_matching_budget([2, 3, 6], kd, [89.0, 89.1, 88.9], reps=500)
        self.assertAlmostEqual(est, 2.5)
        self.assertLessEqual(lo, est)
        self.assertGreaterEqual(hi, est)
        self.assertGreater(lo, 2.0)
        self.assertLess(hi, 3.0)


class StudyLayout(unittest.TestCase):
    def test_isl_layout_keeps_its_thirds_at_multiples_of_three(self):
        import isl_study

        def layout(arm, epochs):  # the layout flags as a dict
            f = isl_study.scaled_flags(arm, epochs)
            return {k: f[f.index(k) + 1] for k in ("--isl-warmup", "--phase-epochs", "--phases") if k in f}
        three = {"--isl-warmup": "1", "--phase-epochs": "1", "--phases": "1"}
        self.assertEqual(layout("isl", 3), three)
        self.assertEqual(layout("isl", 2), three)
        self.assertEqual(layout("isl", 6), {"--isl-warmup": "2", "--phase-epochs": "2", "--phases": "1"})
        self.assertEqual(isl_study.scaled_flags("kd", 6), [])
        self.assertEqual(layout("weighted-rescore", 6), {"--isl-warmup": "2", "--phase-epochs": "4", "--phases": "1"})
        # Shortened to fit (train_kd refuses a curriculum longer than --epochs): the phase first, then the warm-up.
        self.assertEqual(layout("weighted-rescore", 2), three)
        self.assertEqual(layout("isl", 1), {"--isl-warmup": "0", "--phase-epochs": "1", "--phases": "1"})
        self.assertIn("--pace-to-lr-drop", isl_study.scaled_flags("pace-teacher", 6))
        self.assertNotIn("--phase-epochs", isl_study.scaled_flags("pace-teacher", 6))

    def test_isl_arms_pin_the_pre_study_defaults_and_override_them_once(self):
        import isl_study
        for arm, (method, own, _) in isl_study.ARMS.items():
            f = isl_study.scaled_flags(arm, 3)
            if method != "isl":
                self.assertEqual(f, own)
                continue
            if "--pace-to-lr-drop" not in own:  # it lays its phase out itself: its flags stay as they are
                own = [x for i, x in enumerate(own) if x not in ("--isl-warmup", "--phase-epochs", "--phases") and
                       (i == 0 or own[i - 1] not in ("--isl-warmup", "--phase-epochs", "--phases"))]
            self.assertEqual(f[:len(own)], own)  # the arm's own flags first (its layout flags come at the end)
            keys = [x.split("=")[0] for x in f if x.startswith("--")]
            self.assertEqual(len(keys), len(set(keys)), arm)  # CLI11 refuses an option given twice
            for k in isl_study.ISL_BASE:
                self.assertIn(k, keys, arm)
        f = isl_study.scaled_flags("isl", 3)
        self.assertEqual(f[f.index("--measure") + 1], "loss")
        self.assertIn("--pace-to-lr-drop=false", f)
        self.assertEqual(isl_study.scaled_flags("anti", 3)[:2], ["--direction", "hard-first"])

if __name__ == "__main__":
    unittest.main()
