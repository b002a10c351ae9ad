"""Threshold x augmentation-ratio x issue-action sweep: the pipeline up to the `sweep` stage.

Locally:        python jobs/sweep.py jobs/configs/demo.yaml [--set sweep.thresholds=[0.1,0.3] ...]
On a cluster:   ray job submit --working-dir . -- python jobs/sweep.py jobs/configs/demo.yaml
Every trial retrains once and is scored on the held-out split (set data.test_path or
data.test_size). An interrupted sweep resumes where it stopped when the same command is run
again: finished trials are kept, only the missing ones run (Tuner.restore).
Outputs: <run_root>/<name>/sweep/results.parquet, results.csv, best.json.
"""
import argparse
import json
import sys

from hardmine.config import ConfigError, load_config
from hardmine.data import DataError
from hardmine.pipeline import STAGES, run_all

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("config")
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
args = parser.parse_args()

# 1. the config, with the sweep switched on whatever the YAML says
try:
    cfg = load_config(args.config, args.overrides + ["sweep.enabled=true"])
except ConfigError as e:
    print(f"hardmine: error: {e}", file=sys.stderr)
    sys.exit(2)
if "sweep" not in STAGES:
    print("hardmine: error: this version of hardmine has no `sweep` stage in its pipeline", file=sys.stderr)
    sys.exit(2)
if not (cfg.data.test_path or cfg.data.test_size):
    print("hardmine: error: the sweep scores trials on a held-out split: set data.test_path or data.test_size", file=sys.stderr)
    sys.exit(2)

# 2. every stage up to and including the sweep (finished stages are skipped)
try:
    store = run_all(cfg, until="sweep")
except (ConfigError, DataError, ValueError) as e:
    print(f"hardmine: error: {e}", file=sys.stderr)
    sys.exit(2)

# 3. the best configuration
best = store.read_json("sweep/best.json")
b = best.get("best")
if b is None:
    print("no trial finished: nothing to recommend (see sweep/results.csv for the errors)")
    sys.exit(1)
m = best["metric"]
spread = (
    f"[{100 * b[m]['lo']:.2f}, {100 * b[m]['hi']:.2f}] over {b['n_trials']} repeats"
    if b["n_trials"] > 1 else "(one trial: no interval; set sweep.num_samples >= 2 to repeat each configuration)"
)
print(
    f"best configuration by held-out {m}: select.{b['threshold_kind']}={b['threshold']:g} "
    f"aug_ratio={b['aug_ratio']:g} select.issue_action={b['issue_action']} -> {100 * b[m]['mean']:.2f}% {spread}"
)
print(f"note: {best['note']}")
print(json.dumps({k: b[k] for k in ("threshold_kind", "threshold", "aug_ratio", "issue_action")}))
print(f"outputs: {store.uri_of('sweep')}")
