"""Threshold x augmentation-ratio x issue-action sweep: the pipeline up to the `sweep` stage.

Locally:        python jobs/sweep.py jobs/configs/demo.yaml [--set sweep.thresholds=[0.1,0.3] ...]
On a cluster:   ray job submit --working-dir . -- python jobs/sweep.py jobs/configs/demo.yaml
Every cell retrains over sweep.seeds seeds and is scored on a validation split carved from the
training rows (sweep.validation_size); the cell whose difference to the baseline (no action) has
the highest interval lower bound above zero is chosen, then retrained on all training rows and
confirmed once on the held-out test split (set data.test_path or data.test_size). An interrupted
sweep resumes where it stopped when the same command is run again: finished cells are kept, only
the missing ones run (Tuner.restore).
Outputs: <run_root>/<name>/sweep/results.parquet, results.csv, validation.parquet, best.json,
confirmation.parquet, heatmap.png.
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

# 3. the choice (validation) and its confirmation (test)
from hardmine.summaries import read_sweep_best  # noqa: E402

best = read_sweep_best(store.read_json("sweep/best.json"))
b, m = best["best"], best["metric"]
if b is None:
    print(f"nothing chosen: {best['note']} (see sweep/results.csv)")
    sys.exit(1)
if b["no_action"]:
    print(f"chosen on the validation split ({best['selection']['rows']} rows): the baseline (no action): "
          f"no cell's {m} interval lies above it")
else:
    d = b["vs_baseline"][m]
    print(
        f"chosen on the validation split ({best['selection']['rows']} rows): select.{b['threshold_kind']}={b['threshold']:g} "
        f"aug_ratio={b['aug_ratio']:g} select.issue_action={b['issue_action']} -> {m} {100 * b[m]['mean']:.2f}%, "
        f"{100 * d['mean']:+.2f} points vs baseline [{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] over {b['n_seeds']} seeds"
    )
conf = best["confirmation"]
if conf is None:
    print("not confirmed on the test split: the sweep is incomplete (re-run to resume it)")
    sys.exit(1)
for ls in conf["label_sets"]:
    arms = conf["arms"]
    base = arms["baseline"] if ls == "given" else arms["baseline"]["true_labels"]
    line = f"test split ({conf['rows']} rows, {ls} labels): baseline {100 * base[m]['mean']:.2f}%"
    if "chosen" in arms:
        rec = arms["chosen"] if ls == "given" else arms["chosen"]["true_labels"]
        d = rec["vs_baseline"][m]
        line += (f", chosen {100 * rec[m]['mean']:.2f}%: {100 * d['mean']:+.2f} points "
                 f"[{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] {d['verdict']}")
    print(line)
print(f"note: {best['note']}")
print(json.dumps({k: b[k] for k in ("threshold_kind", "threshold", "aug_ratio", "issue_action", "no_action")}))
print(f"outputs: {store.uri_of('sweep')}")
