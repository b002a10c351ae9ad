"""The `hardmine` console script (also `python -m hardmine`). Thin: parses, loads config, calls the library.

One error path: every expected failure (bad data, config, review file, a damaged or busy run
directory, a cluster that cannot run the request) prints one ``hardmine: error: ...`` message and
exits with code 2; a traceback is printed only with ``--debug``. Anything else is a bug: one line,
exit code 1, and the traceback in the run's log file (or on the console with ``--debug``).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from hardmine import console
from hardmine.config import ConfigError, load_config
from hardmine.data import DataError

EXIT_USAGE = 2  # bad input of any kind (argparse uses 2 for usage errors too)
EXIT_BUG = 1


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see jobs/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")


def build_parser() -> argparse.ArgumentParser:
    from hardmine.pipeline import STAGES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show every table and the libraries' logs on the console (always in RUN/logs/hardmine.log)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error")
    parser = argparse.ArgumentParser(prog="hardmine", description=__doc__.splitlines()[0], parents=[common],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add = sub.add_parser

    def add_parser(name, **kw):  # -v / --debug accepted before or after the subcommand
        return _add(name, parents=[common], **kw)

    sub.add_parser = add_parser
    p = sub.add_parser("run", help="run every stage (resuming finished ones)")
    _config_args(p)
    for stage in STAGES:
        p = sub.add_parser(stage.name, help=f"run the pipeline up to the {stage.name} stage")
        _config_args(p)
    review = sub.add_parser("review", help="human review queues").add_subparsers(dest="review_command", required=True)
    _add_review = review.add_parser
    review.add_parser = lambda name, **kw: _add_review(name, parents=[common], **kw)
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
    p = review.add_parser("next", help="retrain on the newest reviewed version (up to score) and export the next label-issue "
                                       "batch, without the rows already reviewed")
    _config_args(p)
    p.add_argument("--limit", type=int, default=None, help="keep the top N label issues")
    p.add_argument("--budget", type=int, default=None, metavar="N",
                   help="review budget: the N unreviewed rows with the lowest label_quality (or highest error_risk)")
    p.add_argument("--rank-by", choices=["label_quality", "error_risk"], default=None,
                   help="queue order (default: score.review_rank_by)")
    p.add_argument("--format", dest="fmt", choices=["csv", "label-studio", "both"], default="both")
    p = sub.add_parser("pseudo-label", help="self-training: the fold models label an unlabelled pool; confident rows "
                                            "become a new dataset version, boundary rows go to the active-learning queue")
    _config_args(p)
    p.add_argument("--unlabelled", default=None, help="the unlabelled pool (default: data.unlabelled_path)")
    p = sub.add_parser("report", help="write RUN_DIR/report.html (one self-contained page)")
    p.add_argument("run_dir")
    sub.add_parser("config-reference", help="print every configuration key as Markdown")
    p = sub.add_parser("demo-data", help="write the embedded demo dataset (demo.csv + demo_truth.csv)")
    p.add_argument("out_dir")
    p.add_argument("--rows", type=int, default=3000)
    p.add_argument("--noise-rate", type=float, default=0.08)
    p.add_argument("--seed", type=int, default=0)
    return parser


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input or a run that cannot go on as asked: exit code 2."""
    from hardmine.runtime import ClusterError
    from hardmine.store import RunStoreError

    return (ConfigError, DataError, ClusterError, RunStoreError)


def _unwrap(e: BaseException) -> BaseException:
    """The user-facing error inside a Ray task/actor error (Ray wraps what a worker raised)."""
    seen = 0
    while seen < 5:
        cause = getattr(e, "cause", None)  # ray.exceptions.RayTaskError carries the original
        if cause is None or cause is e:
            break
        e, seen = cause, seen + 1
    return e


def _message(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbose, debug = getattr(args, "verbose", False), getattr(args, "debug", False)
    console.setup(verbose=verbose)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("hardmine: interrupted; finished stages are kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except BaseException as e:  # noqa: BLE001 - the one place errors become messages
        if isinstance(e, SystemExit):
            raise
        inner = _unwrap(e)
        if isinstance(inner, expected_errors()):
            if debug:
                traceback.print_exception(e)
            print(f"hardmine: error: {_message(inner)}", file=sys.stderr)
            return EXIT_USAGE
        where = console.CONSOLE.log_path
        if where:
            import logging

            logging.getLogger("hardmine").error("unexpected error", exc_info=e)
        if debug:
            traceback.print_exception(e)
        print(f"hardmine: internal error: {type(inner).__name__}: {_message(inner)}\n"
              f"  this is a bug in hardmine, not in your input; the traceback is "
              + (f"in {where}" if where else "shown with --debug") + ". Finished stages are kept: re-run to resume.",
              file=sys.stderr)
        return EXIT_BUG
    finally:
        summary = console.CONSOLE.warning_summary()
        if summary:
            print(summary, file=sys.stderr)
        console.CONSOLE.detach()


def _log_dir(cfg) -> str:
    from hardmine.store import is_local

    if is_local(cfg.run_root):
        return os.path.join(cfg.run_dir.removeprefix("file://"), "logs")
    import tempfile

    return os.path.join(tempfile.gettempdir(), "hardmine-logs", cfg.name)


def _dispatch(args) -> int:
    if args.command == "report":
        from hardmine.report import write_report

        try:
            console.say(f"report: {write_report(args.run_dir)}")
        except (FileNotFoundError, ValueError) as e:  # not a run directory, or an artifact missing or damaged
            raise DataError(f"report of {args.run_dir}: {str(e).strip(chr(34))}") from None
        return 0
    if args.command == "config-reference":
        from hardmine.config import reference_markdown

        print(reference_markdown())
        return 0
    if args.command == "demo-data":
        from hardmine.data.demo import write_demo

        if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
            raise DataError(f"demo-data: {args.out_dir!r} is a file; give a directory to write demo.csv and demo_truth.csv into")
        try:
            out = write_demo(args.out_dir, n_rows=args.rows, noise_rate=args.noise_rate, seed=args.seed)
        except ValueError as e:
            raise DataError(f"demo-data: {e}") from None
        console.say(f"wrote {out['data']} and {out['truth']} ({out['n_rows']} rows, {out['n_noisy']} noisy labels)")
        return 0
    from hardmine.pipeline import run_all

    from hardmine.preflight import check_run_root, preflight

    cfg = load_config(args.config, args.overrides)
    check_run_root(cfg)  # before the log directory is made inside it
    console.CONSOLE.attach(_log_dir(cfg))
    if args.command == "review":
        from hardmine.review import commands

        if args.review_command == "export":
            commands.export(cfg, queue=args.queue, fmt=args.fmt, strategy=args.strategy,
                            batch_size=args.batch_size, unlabelled=args.unlabelled, limit=args.limit,
                            budget=args.budget, rank_by=args.rank_by)
        elif args.review_command == "next":
            commands.next_batch(cfg, fmt=args.fmt, limit=args.limit, budget=args.budget, rank_by=args.rank_by, log=console.say)
        else:
            commands.import_corrections(cfg, args.corrections, source=args.source, strict=args.strict)
        return 0
    if args.command == "pseudo-label":
        from hardmine.review.pseudo import pseudo_label

        pseudo_label(cfg, unlabelled=args.unlabelled, log=console.say)
        return 0
    preflight(cfg)  # files, models, resources: before Ray starts
    store = run_all(cfg, log=console.say, until=None if args.command == "run" else args.command)
    from hardmine.summaries import run_overview

    for line in run_overview(store, args.config):
        console.say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
