"""Calibrate the what-if interval (studio.analysis.predict.INTERVAL_Z and EXTRAP) and measure its coverage.

    PYTHONPATH=. python bench/calibrate_predict.py [--db PATH]

The choice: the narrowest median width among the candidates whose coverage is
- at least TARGET on synthetic sweeps of seeds 0-199, on each protocol (leave-one-
  out and forward) apart, so the many narrow leave-one-out points cannot buy the
  forward ones, which are what a user asks; and
- at least REAL_TARGET on the reference post's published sweeps, the only real
  GPU measurements the project ships: synthetic laws alone are kinder than real
  machines (with them alone the choice left the published batched sweep's 4-GPU
  point, predicted from 1-3 GPUs, outside its interval, and 10 of 14 published
  points inside), so the published coverage quoted is in-sample.
The coverage measured on data the constants were not chosen on: synthetic seeds
1000-1199 and, with --db, every stored sweep with three or more GPU counts (a CPU
sweep made for the purpose, say). Prints a row per candidate; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET = 90.0  # a margin over the 80 % asked for: the test seeds are other draws of the same laws
REAL_TARGET = 80.0  # 14 points: 12 of 14 is the first count over 80 %, no room for a margin
TRAIN = range(0, 200)
TEST = range(1000, 1200)


def main() -> int:
    from db.store import Store
    from studio.analysis import predict
    from studio.analysis.predict_coverage import coverage, describe, published_cases, store_cases, synthetic_cases

    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=None, help="also measure every stored sweep with 3+ counts in this database")
    args = ap.parse_args()
    train = synthetic_cases(TRAIN)
    published = published_cases(Store(Path(tempfile.mkdtemp()) / "ref.db"))
    best = None
    for z in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5):
        for extrap in (0.0, 0.1, 0.2, 0.3, 0.4, 0.6):
            predict.INTERVAL_Z, predict.EXTRAP = z, extrap
            cov, real = coverage(train), coverage(published)
            kinds = cov["by_kind"]
            print(f"z={z:<5} extrap={extrap:<4} train coverage {cov['coverage_pct']:5.1f}%  "
                  f"median width {cov['median_width_pct']:5.1f}%  " + "  ".join(
                      f"{k} {v['coverage_pct']:.1f}% / {v['median_width_pct']:.0f}%" for k, v in kinds.items())
                  + f"  published {real['inside']}/{real['points']}")
            if (min(v["coverage_pct"] for v in kinds.values()) >= TARGET and real["coverage_pct"] >= REAL_TARGET
                    and (best is None or cov["median_width_pct"] < best[2])):
                best = (z, extrap, cov["median_width_pct"])
    if best is None:
        print("no candidate reached the target")
        return 1
    predict.INTERVAL_Z, predict.EXTRAP = best[0], best[1]
    print(f"\nchosen: INTERVAL_Z = {best[0]}, EXTRAP = {best[1]}")
    print(describe(coverage(synthetic_cases(TEST)), f"synthetic seeds {TEST.start}-{TEST.stop - 1} (held out)"))
    print(describe(coverage(published), "published sweeps (in-sample: a constraint of the choice)"))
    if args.db:
        print(describe(coverage(store_cases(Store(args.db))), f"stored sweeps in {args.db}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
