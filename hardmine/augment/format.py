"""Console formatting of an augmentation run's summary (:func:`hardmine.augment.pipeline.run_augment`): one line
for the console, the whole funnel for the log file."""
from __future__ import annotations

from hardmine.augment.language import describe_detection


def format_funnel_short(summary: dict, what: str) -> str:
    """One console line per augmentation run (the full funnel goes to the log file)."""
    if not summary["sources"]:
        return f"augment ({what}): nothing to generate" + (f": {summary['no_sources_reason']}" if summary.get("no_sources_reason") else "")
    rejected = ", ".join(f"{r} {n}" for r, n in summary["reject_reasons"].items()) or "none"
    errors = f", {summary['errors']} errors" if summary.get("errors") else ""
    return (f"augment ({what}): {summary['sources']} sources -> {summary['rows']} variants, {summary['kept']} kept{errors} "
            f"in {summary.get('seconds', 0):.0f}s; rejected: {rejected}")


def format_funnel(summary: dict) -> str:
    lines = []
    if summary.get("language"):
        det = summary.get("language_detection") or {"language": summary["language"]}
        how = "auto for " + summary["language"] if summary.get("generators_from") == "auto" else "as configured"
        lines.append(f"  language {describe_detection(det)}; generators {summary.get('generators')} ({how})")
    if not summary["sources"] and summary.get("no_sources_reason"):
        lines.append(f"  {summary['no_sources_reason']}")
    lines.append(f"  generated {summary['rows']} variants from {summary['sources']} sources; kept {summary['kept']}")
    for reason, n in summary["reject_reasons"].items():
        lines.append(f"    {reason:<24} rejected {n:>6}")
    for method, m in summary["by_method"].items():
        lines.append(f"    method {method:<17} {m}")
    return "\n".join(lines)
