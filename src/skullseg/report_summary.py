"""The summary at the top of ``report.html``: title, warnings and a card per part of the report.

:func:`summary_html` turns ``report.json``'s dictionary into HTML (every value escaped);
the keys it does not know get a card of their own, so new measures show without changes here.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Mapping

from . import labels as L

__all__ = ["summary_html"]


def _fmt(value: object) -> str:
    """Short, escaped text for one report value."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        numeric = all(isinstance(v, (int, float)) for v in value)
        return (" x " if numeric else ", ").join(_fmt(v) for v in value)
    return "-" if value is None else html.escape(str(value))


def _table(d: Mapping) -> str:
    rows = []
    for k, v in d.items():
        cell = _table(v) if isinstance(v, Mapping) else _fmt(v)
        rows.append(f'<tr><td class="key">{html.escape(str(k))}</td><td>{cell}</td></tr>')
    return f"<table>{''.join(rows)}</table>"


def _card(title: str, body: str) -> str:
    return f'<div class="card"><h3>{html.escape(title)}</h3>{body}</div>'


def _volumes_table(volumes: Mapping) -> str:
    colours = {n: c for n, c in L.LABELS.values()}
    rows = [
        f'<tr><td><i class="swatch" style="background:{colours.get(k, "#888")}"></i>'
        f'{html.escape(str(k))}</td><td class="num">{_fmt(v)}</td></tr>'
        for k, v in volumes.items()
    ]
    return f"<table>{''.join(rows)}</table>"


def _timings_table(timings: Mapping) -> str:
    stages = {k: float(v) for k, v in timings.items() if k != "total"}
    longest = max(stages.values(), default=0.0) or 1.0
    rows = [
        f'<tr><td>{html.escape(str(k))}</td><td class="num">{v:.1f}</td>'
        f'<td style="width:40%"><div class="bar" style="width:{100 * v / longest:.0f}%"></div></td>'
        "</tr>"
        for k, v in stages.items()
    ]
    if "total" in timings:
        rows.append(
            f'<tr class="total"><td>total</td><td class="num">{float(timings["total"]):.1f}</td>'
            "<td></td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


_KNOWN = (
    "skullseg_version",
    "input",
    "options",
    "working_grid",
    "timings_s",
    "volumes_ml",
    "skull_thickness_mm",
    "warnings",
)


def summary_html(report: Mapping, name: str) -> str:
    """HTML for the summary of ``report`` (``report.json``'s dictionary) of the run ``name``.

    Examples
    --------
    >>> text = summary_html({"volumes_ml": {"skull": 512.25}, "warnings": ["<odd>"]}, "T1")
    >>> "skullseg report: T1" in text and "512.2" in text and "&lt;odd&gt;" in text
    True
    """
    version = report.get("skullseg_version", "")
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    inp = dict(report.get("input") or {})
    path = inp.pop("path", "")
    out = [
        f"<h1>skullseg report: {html.escape(name)}</h1>",
        f'<div class="sub">{html.escape(str(path))}<br>skullseg {html.escape(str(version))}'
        f" &middot; report written {html.escape(when)}</div>",
    ]
    warnings = list(report.get("warnings") or [])
    if warnings:
        items = "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings)
        out.append(
            f'<div class="warnings" id="warnings"><h2>&#9888; {len(warnings)} warning'
            f"{'s' if len(warnings) > 1 else ''}</h2><ul>{items}</ul></div>"
        )
    else:
        out.append('<div class="nowarn" id="warnings">&#10003; No warnings.</div>')
    cards = []
    if inp:
        cards.append(_card("Input", _table(inp)))
    setup = {**(report.get("options") or {})}
    if report.get("working_grid"):
        setup["working grid"] = report["working_grid"]
    if setup:
        cards.append(_card("Options", _table(setup)))
    if report.get("volumes_ml"):
        cards.append(_card("Volumes (ml)", _volumes_table(report["volumes_ml"])))
    if report.get("skull_thickness_mm"):
        cards.append(_card("Skull thickness (mm)", _table(report["skull_thickness_mm"])))
    if report.get("timings_s"):
        cards.append(_card("Timings (s)", _timings_table(report["timings_s"])))
    for key, value in report.items():
        if key not in _KNOWN:
            body = _table(value) if isinstance(value, Mapping) else _fmt(value)
            cards.append(_card(key.replace("_", " ").capitalize(), body))
    out.append(f'<h2>Summary</h2><div class="cards">{"".join(cards)}</div>')
    return "\n".join(out)
