"""The HTML building blocks of the report: escaping, number formats, tables, key-value lists, images, CSS.

Every value is escaped unless it is :class:`Html` (markup built here, already escaped).
"""
from __future__ import annotations

import base64
import math
from html import escape
from typing import Any, Sequence

import numpy as np


class Html(str):
    """Trusted markup (already escaped); everything else is escaped by :func:`_e`."""


#: a :func:`kv` value that leaves its row out
SKIP = object()


def fmt(v: Any) -> str:
    """A value as the page shows it: ``–`` for None, yes/no, thousands separators, 4 decimals below 1."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == int(v):
            return f"{int(v):,}"
        if abs(v) < 1:  # probabilities and metrics: fixed width
            return f"{v:.4f}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def _e(v: Any) -> str:
    return v if isinstance(v, Html) else escape(fmt(v), quote=True)


def pct(v: Any) -> Html:
    return Html("–" if v is None else f"{100 * float(v):.1f}%")


def ci(iv: dict | None) -> Html:
    """A metric with its interval: ``0.8000 [0.7800, 0.8200]``."""
    if iv is None:
        return Html("–")
    return Html(f"{iv['mean']:.4f} <span class=muted>[{iv['lo']:.4f}, {iv['hi']:.4f}]</span>")


def delta(d: dict | None) -> Html:
    """A difference with its interval and what it means: ``≠0`` (higher / lower) or "not distinguishable"."""
    if d is None:
        return Html("–")
    s = f"{d['mean']:+.4f} <span class=muted>[{d['lo']:+.4f}, {d['hi']:+.4f}]</span> "
    if d["excludes_zero"]:
        return Html(s + f"<span class=badge>≠0</span> {escape(d['verdict'])}")
    return Html(s + "<span class=muted>not distinguishable</span>")


def trunc(s: Any, n: int = 300) -> Any:
    """A string cut to ``n`` characters (with …); anything else as is."""
    if not isinstance(s, str):
        return s
    return s if len(s) <= n else s[: n - 1] + "…"


def text(s: Any, n: int = 300) -> Html:
    """User text: escaped, truncated, direction detected by the browser."""
    if s is None:
        return Html("<span class=muted>(missing)</span>")
    return Html(f'<span dir="auto">{escape(trunc(str(s), n), quote=True)}</span>')


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, more: int = 0, caption: str | None = None) -> Html:
    """An HTML table; numbers are right-aligned, every cell is escaped unless it is :class:`Html`."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            cells.append(f"<td class=num>{_e(v)}</td>" if num else f"<td>{_e(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(header)}" class=muted>(none)</td></tr>')
    out.append("</tbody></table>")
    if more > 0:
        out.append(f"<p class=muted>… {more:,} more rows not shown</p>")
    return Html("".join(out))


def kv(pairs: Sequence[tuple[str, Any]]) -> Html:
    """A key-value list; a pair whose value is :data:`SKIP` is left out."""
    return Html(
        "<dl class=kv>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs if v is not SKIP) + "</dl>"
    )


def img(png: bytes, alt: str) -> Html:
    """A PNG embedded as a base64 data URI."""
    data = base64.b64encode(png).decode("ascii")
    return Html(f'<figure><img alt="{escape(alt, quote=True)}" src="data:image/png;base64,{data}"></figure>')


def para(s: str, cls: str | None = None) -> Html:
    return Html(f"<p{f' class={cls}' if cls else ''}>{escape(s)}</p>")


def h3(s: str) -> Html:
    return Html(f"<h3>{escape(s)}</h3>")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans KR","Apple SD Gothic Neo",sans-serif;
 margin:0 auto;max-width:1200px;padding:1rem 2rem 4rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;border-bottom:2px solid #e4e4e8;padding-bottom:.2rem;margin-top:2.2rem}
h3{font-size:1rem;margin:1.2rem 0 .4rem} nav{font-size:.9rem;margin:.6rem 0 1rem} nav a{margin-right:.9rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.85rem;max-width:100%}
caption{text-align:left;font-size:.8rem;color:#666;padding-bottom:.25rem}
th,td{border:1px solid #e1e1e6;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f5f5f7} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td span[dir]{display:inline-block;max-width:34rem;overflow-wrap:anywhere}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;font-size:.9rem}
dl.kv dt{color:#555} dl.kv dd{margin:0;font-variant-numeric:tabular-nums}
figure{margin:.6rem 0} img{max-width:100%;height:auto;border:1px solid #eee}
.missing{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .7rem}
.error{background:#fdecea;border-left:4px solid #d93025;padding:.4rem .7rem}
.muted{color:#777} .badge{background:#e6f4ea;color:#137333;border-radius:3px;padding:0 .3rem;font-size:.75rem}
code{background:#f3f3f6;padding:0 .2rem;border-radius:2px}
"""
