"""Mine a dataset's hard examples: the same pipeline as `hardmine run`.

Locally:        python jobs/mine.py jobs/configs/demo.yaml [--set oof.folds=3 ...]
On a cluster:   ray job submit --working-dir . -- python jobs/mine.py jobs/configs/demo.yaml
Under `ray job submit` RAY_ADDRESS is set, so the job joins that cluster; otherwise it
starts a local one. Every finished stage is recorded in <run_root>/<name>/manifest.json, so
re-submitting the same command resumes where a previous run stopped.
"""
import argparse
import sys

from hardmine import cli

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("config")
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
parser.add_argument("--until", default=None, help="stop after this stage")
parser.add_argument("-v", "--verbose", action="store_true", help="every table and the libraries' logs on the console")
parser.add_argument("--debug", action="store_true", help="print the traceback of an error")

if __name__ == "__main__":
    args = parser.parse_args()
    argv = [args.until or "run", args.config] + [f"--set={o}" for o in args.overrides]
    argv += ["-v"] * args.verbose + ["--debug"] * args.debug
    sys.exit(cli.main(argv))  # the command line's one error path: a clear message and exit code 2 for bad input
