"""The under-training control of jobs/bench_lift.py's finetune arms: each arm trained 3 epochs against the plain
baseline trained 5 epochs, paired bootstrap over the test rows (hardmine.evaluate.compare, seeds averaged).

    # after the two bench_lift.py runs in its docstring (finetune, 3 epochs) and the 5-epoch baseline:
    python jobs/bench_lift.py --banking77 ../shared/data/banking77 --sizes 20 --arms baseline --finetune-sizes 20 \
        --finetune-datasets banking77 --finetune-seeds 3 --finetune-epochs 5 --finetune-arms baseline \
        --run-root runs/bench/lift_hard_work --out runs/bench/lift_ft_e5.json
    python jobs/bench_lift_epochs.py --run-dir runs/bench/lift_hard_work/lift-banking77-20 --out runs/bench/lift_ft_vs_e5.json

Prints one line per arm and writes JSON: per arm ``accuracy``, ``n_seeds`` and, against the 5-epoch baseline,
``delta_vs_5ep_baseline`` with its 95% interval ``ci``. McNemar is not reported: it pairs single predictions, and the
sides have different seed counts.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

COLS = ["arm", "seed", "pred", "confidence"]


def arm_rows(table: pa.Table, arm: str, name: str) -> pa.Table:
    t = table.filter(pc.equal(table.column("arm"), arm)).select(COLS)
    return t.set_column(0, "arm", pa.array([name] * t.num_rows, pa.string()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", required=True, help="a bench_lift setting's run directory (e.g. .../lift-banking77-20)")
    ap.add_argument("--out", default="runs/bench/lift_ft_vs_e5.json")
    ap.add_argument("--short", default="e3", help="the recipe of the arms (bench file tag)")
    ap.add_argument("--long", default="e5", help="the recipe of the control baseline")
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the arms' runs (bench file tag)")
    args = ap.parse_args()
    from hardmine.evaluate import compare

    run = Path(args.run_dir)
    longs = sorted(glob.glob(str(run / f"bench/runs_finetune_s*_{args.long}_*baseline.parquet")))
    shorts = sorted(glob.glob(str(run / f"bench/runs_finetune_s{args.seeds}_{args.short}_*.parquet")))
    if not longs or not shorts:
        print(f"{run}/bench lacks the finetune runs of {args.short} and {args.long}: run jobs/bench_lift.py first", file=sys.stderr)
        return 2
    parts = [arm_rows(pq.read_table(longs[0]), "baseline", "baseline")]
    seen = set()
    for f in shorts:
        t = pq.read_table(f)
        for arm in sorted(set(t.column("arm").to_pylist()) - seen - {"tfidf-logreg"}):
            parts.append(arm_rows(t, arm, f"{arm}-{args.short}"))
            seen.add(arm)
    test = pq.read_table(run / "test.parquet")
    s = compare(pa.concat_tables(parts), test.column("label").to_numpy(),
                num_labels=len(json.loads((run / "manifest.json").read_text())["labels"]), resamples=1000, confidence=0.95, seed=0)
    out = {}
    for a, r in s["arms"].items():
        d = r.get("vs_baseline")
        out[a] = {"accuracy": r["accuracy"]["mean"], "n_seeds": r["n_seeds"],
                  **({"delta_vs_5ep_baseline": d["accuracy"]["mean"], "ci": [d["accuracy"]["lo"], d["accuracy"]["hi"]]} if d else {})}
        ci = f"{100 * out[a]['delta_vs_5ep_baseline']:+.2f} [{100 * d['accuracy']['lo']:+.2f}, {100 * d['accuracy']['hi']:+.2f}]" if d else ""
        print(f"{a:<28} {100 * out[a]['accuracy']:6.2f}  {ci}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"long": longs[0], "short": shorts, "arms": out}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
