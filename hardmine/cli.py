"""The `hardmine` console script (also `python -m hardmine`). Thin: parses, loads config, calls the library."""
from __future__ import annotations

import argparse
import sys

from hardmine.config import ConfigError, load_config
from hardmine.data import DataError


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see jobs/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")


def build_parser() -> argparse.ArgumentParser:
    from hardmine.pipeline import STAGES

    parser = argparse.ArgumentParser(prog="hardmine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run every stage (resuming finished ones)")
    _config_args(p)
    for name in STAGES:
        p = sub.add_parser(name, help=f"run the pipeline up to the {name} stage")
        _config_args(p)
    review = sub.add_parser("review", help="human review queues").add_subparsers(dest="review_command", required=True)
    p = review.add_parser("export", help="export a review queue as CSV and Label Studio tasks")
    _config_args(p)
    p.add_argument("--queue", choices=["issues", "active"], default="issues", help="label issues, or active learning")
    p.add_argument("--strategy", choices=["least_confidence", "margin", "entropy"], default="least_confidence")
    p.add_argument("--batch-size", type=int, default=100, help="rows in an active-learning queue")
    p.add_argument("--unlabelled", default=None, help="active learning over an unlabelled file (the fold models predict it)")
    p.add_argument("--limit", type=int, default=None, help="keep the top N label issues")
    p.add_argument("--budget", type=int, default=None, metavar="N",
                   help="review budget: the N rows with the lowest label_quality (or highest error_risk), flagged or not")
    p.add_argument("--rank-by", choices=["label_quality", "error_risk"], default=None,
                   help="queue order: lowest label_quality, or highest error_risk from the dual model (default: score.review_rank_by)")
    p.add_argument("--format", dest="fmt", choices=["csv", "label-studio", "both"], default="both")
    p = review.add_parser("import", help="import corrections (CSV or Label Studio JSON export)")
    _config_args(p)
    p.add_argument("corrections", help="the edited CSV or a Label Studio JSON export")
    p.add_argument("--source", default=None, help="name recorded in the audit table (default: the file name)")
    p.add_argument("--no-strict", dest="strict", action="store_false", help="report unknown ids/labels instead of failing")
    p = sub.add_parser("report", help="write RUN_DIR/report.html (one self-contained page)")
    p.add_argument("run_dir")
    sub.add_parser("config-reference", help="print every configuration key as Markdown")
    p = sub.add_parser("demo-data", help="write the embedded demo dataset (demo.csv + demo_truth.csv)")
    p.add_argument("out_dir")
    p.add_argument("--rows", type=int, default=3000)
    p.add_argument("--noise-rate", type=float, default=0.08)
    p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            from hardmine.report import write_report

            print(f"report: {write_report(args.run_dir)}")
            return 0
        if args.command == "config-reference":
            from hardmine.config import reference_markdown

            print(reference_markdown())
            return 0
        if args.command == "demo-data":
            from hardmine.demo_data import write_demo

            out = write_demo(args.out_dir, n_rows=args.rows, noise_rate=args.noise_rate, seed=args.seed)
            print(f"wrote {out['data']} and {out['truth']} ({out['n_rows']} rows, {out['n_noisy']} noisy labels)")
            return 0
        from hardmine.pipeline import run_all

        cfg = load_config(args.config, args.overrides)
        if args.command == "review":
            from hardmine import review_cmd

            if args.review_command == "export":
                review_cmd.export(cfg, queue=args.queue, fmt=args.fmt, strategy=args.strategy,
                                  batch_size=args.batch_size, unlabelled=args.unlabelled, limit=args.limit,
                                  budget=args.budget, rank_by=args.rank_by)
            else:
                review_cmd.import_corrections(cfg, args.corrections, source=args.source, strict=args.strict)
            return 0
        store = run_all(cfg, until=None if args.command == "run" else args.command)
        print(f"outputs: {store.uri}")
        return 0
    except (ConfigError, DataError) as e:
        print(f"hardmine: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
