"""Console formatting of the oof stage's summary: the combined out-of-fold metrics, then per member, calibration and fold."""
from __future__ import annotations


def format_oof(summary: dict) -> str:
    members = summary.get("members") or {}
    lines = [f"OOF accuracy {summary['accuracy']:.4f}, log-loss {summary.get('log_loss', float('nan')):.4f}, "
             f"ECE {summary.get('ece', float('nan')):.4f} ({' + '.join(summary.get('backbones', [])) or summary.get('runner')})"]
    if members:
        lines.append(f"  {'member':<10} {'weight':>6}  {'accuracy':>8}  {'log-loss':>8}  {'ECE':>6}")
        for name, m in members.items():
            lines.append(f"  {name:<10} {m.get('weight', 1.0):>6.3f}  {m['accuracy']:>8.4f}  {m['log_loss']:>8.4f}  {m['ece']:>6.4f}")
    cal = summary.get("calibration") or {}
    if cal.get("method") == "temperature":
        lines.append(f"  temperature {cal['temperature']:.3f} (cross-fitted over folds): ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}")
    if summary.get("folds"):
        lines.append("  fold  rows  accuracy" + (f"  ({summary['backbones'][0]})" if summary.get("backbones") else ""))
        for f in summary["folds"]:
            lines.append(f"  {f['fold']:>4}  {f['rows']:>4}  {f['accuracy']:.4f}")
    return "\n".join(lines)
