"""Mine a dataset's hard examples: the same pipeline as `hardmine run`.

Locally:        python jobs/mine.py jobs/configs/demo.yaml [--set oof.folds=3 ...]
On a cluster:   ray job submit --working-dir . -- python jobs/mine.py jobs/configs/demo.yaml
Under `ray job submit` RAY_ADDRESS is set, so the job joins that cluster; otherwise it
starts a local one. Every finished stage is recorded in <run_root>/<name>/manifest.json, so
re-submitting the same command resumes where a previous run stopped.
"""
import argparse
import sys

from hardmine.config import ConfigError, load_config
from hardmine.data import DataError
from hardmine.pipeline import run_all

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("config")
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
parser.add_argument("--until", default=None, help="stop after this stage")
args = parser.parse_args()

try:
    cfg = load_config(args.config, args.overrides)
    store = run_all(cfg, until=args.until)
except (ConfigError, DataError) as e:
    print(f"hardmine: error: {e}", file=sys.stderr)
    sys.exit(2)
print(f"outputs: {store.uri}")
