"""HTML and inline-SVG rendering of the status page (pure: data dict in, markup out).

The page is self-contained - one HTML document with inline CSS and server-rendered SVG, no
scripts, fonts or CDN - so it loads anywhere, fast, and cannot leak visitors to third parties.
Charts use a ``viewBox`` and scale to the screen; the layout is a single column on a phone.
Every value is escaped: sensor ids and model versions come from the database.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from typing import Any

WIDE, NARROW = 640, 360
"""viewBox widths of the two renderings of every chart: CSS shows the narrow one on phones,
so chart text stays readable instead of shrinking with the screen."""
POTABLE_COLOR = "#0f766e"
UNSAFE_COLOR = "#c2410c"
STATUS_COLORS = {
    "ok": "#15803d",
    "watch": "#ca8a04",
    "drift": "#b91c1c",
    "insufficient_data": "#6b7280",
}
STATUS_LABELS = {
    "ok": "stable",
    "watch": "watch",
    "drift": "drift",
    "insufficient_data": "too few readings",
}
DECISION_LABELS = {
    "first_champion": "first model promoted",
    "challenger_wins": "new model promoted",
    "champion_kept": "current model kept",
}

CSS = """
:root{--fg:#111827;--muted:#4b5563;--line:#e5e7eb;--card:#f9fafb;--ok:#15803d;--bad:#b91c1c}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:#fff}
header,main,footer{max-width:980px;margin:0 auto;padding:0 16px}
header{padding-top:20px}
h1{font-size:1.5rem;margin:0 0 4px}
h2{font-size:1.15rem;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.muted{color:var(--muted);font-size:.9rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-top:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px}
.card .label{color:var(--muted);font-size:.85rem}
.card .value{font-size:1.6rem;font-weight:650;margin:2px 0}
.card .sub{color:var(--muted);font-size:.85rem}
.flag{display:inline-block;border-radius:999px;padding:1px 10px;font-size:.8rem;font-weight:600;
color:#fff}
.flag.good{background:var(--ok)}.flag.bad{background:var(--bad)}.flag.none{background:#6b7280}
figure{margin:8px 0 0}
figcaption{color:var(--muted);font-size:.85rem}
svg{width:100%;height:auto;display:block}
svg text{font-family:inherit}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
td.id{white-space:normal;overflow-wrap:anywhere;min-width:12ch;max-width:32ch}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:14px;font-size:.85rem}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
.alerts{list-style:none;padding:0;margin:16px 0 0}
.alerts li{border:1px solid var(--line);border-left:6px solid var(--bad);border-radius:8px;
padding:8px 12px;margin-bottom:8px;background:#fef2f2}
.alerts li.WARNING{border-left-color:#ca8a04;background:#fefce8}
footer{margin:32px auto 24px;color:var(--muted);font-size:.85rem}
.narrow{display:none}
@media (max-width:600px){.wide{display:none}.narrow{display:block}}
@media (max-width:520px){.card .value{font-size:1.3rem}h1{font-size:1.25rem}}
"""


# --- formatting --------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    """0.6234 -> '62.3%'; None -> an em dash (not measurable yet)."""
    return "\u2014" if value is None else f"{value * 100:.{digits}f}%"


def when(value: str | None) -> str:
    """ISO timestamp -> 'YYYY-MM-DD HH:MM UTC' (the page states times in UTC only)."""
    if not value:
        return "\u2014"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def _e(value: Any) -> str:
    return escape("\u2014" if value is None else str(value))


def _num(value: float | None, digits: int = 3) -> str:
    return "\u2014" if value is None else f"{value:.{digits}f}"


# --- SVG charts --------------------------------------------------------------------------


def svg_stacked_bars(
    buckets: Sequence[dict[str, Any]],
    labels: Sequence[str],
    title: str,
    label_every: int = 1,
    width: int = WIDE,
) -> str:
    """Bars of inferences per bucket, potable (bottom) and not potable (top)."""
    height, left, bottom, top = 200, 40, 28, 12
    plot_h = height - bottom - top
    top_value = max([b["total"] for b in buckets] + [1])
    slot = (width - left - 8) / max(len(buckets), 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
        'stroke="#9ca3af"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="12" text-anchor="end" '
        f'fill="#4b5563">{top_value}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="12" text-anchor="end" '
        'fill="#4b5563">0</text>',
    ]
    for i, (b, label) in enumerate(zip(buckets, labels, strict=False)):
        x = left + i * slot + slot * 0.12
        w = slot * 0.76
        h_potable = plot_h * b["potable"] / top_value
        h_unsafe = plot_h * (b["total"] - b["potable"]) / top_value
        y0 = top + plot_h
        tip = f"{label}: {b['total']} inferences, {b['potable']} potable"
        parts.append(f"<g><title>{escape(tip)}</title>")
        if h_potable:
            parts.append(
                f'<rect x="{x:.1f}" y="{y0 - h_potable:.1f}" width="{w:.1f}" '
                f'height="{h_potable:.1f}" fill="{POTABLE_COLOR}"/>'
            )
        if h_unsafe:
            parts.append(
                f'<rect x="{x:.1f}" y="{y0 - h_potable - h_unsafe:.1f}" width="{w:.1f}" '
                f'height="{h_unsafe:.1f}" fill="{UNSAFE_COLOR}"/>'
            )
        parts.append("</g>")
        if i % label_every == 0 or i == len(buckets) - 1:
            parts.append(
                f'<text x="{x + w / 2:.1f}" y="{height - 8}" font-size="12" '
                f'text-anchor="middle" fill="#4b5563">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


LABEL_CHAR_PX = 8.0
"""Width budgeted per character of a 13 px label (wide glyphs like ``m``/``W`` included), so
a clipped label never crosses the chart's left edge."""


def clip(label: str, fits: int) -> str:
    """``label`` cut to ``fits`` characters with an ellipsis (sensor ids may be 128 long); the
    full text stays in the tooltip and the table."""
    return label if len(label) <= fits else label[: fits - 1] + "\u2026"


def svg_hbars(
    items: Sequence[tuple[str, float | None, str, str]],
    max_value: float,
    title: str,
    markers: Sequence[tuple[float, str]] = (),
    width: int = WIDE,
) -> str:
    """Horizontal bars: (label, value or None, colour, text shown after the bar), with
    dashed vertical markers (thresholds) at the given values."""
    row, top = 30, 18
    left, right = (150, 96) if width > NARROW else (112, 86)
    height = top + row * max(len(items), 1) + 8
    span = width - left - right
    scale = span / max_value if max_value > 0 else 0
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for at, marker in markers:
        x = left + min(at, max_value) * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 4}" '
            'stroke="#6b7280" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{top - 6}" font-size="11" text-anchor="middle" '
            f'fill="#4b5563">{escape(marker)}</text>'
        )
    fits = max(int((left - 12) / LABEL_CHAR_PX), 4)
    for i, (label, value, color, text) in enumerate(items):
        y = top + i * row
        parts.append(
            f'<text x="{left - 8}" y="{y + row * 0.62:.1f}" font-size="13" '
            f'text-anchor="end" fill="#111827"><title>{escape(label)}</title>'
            f"{escape(clip(label, fits))}</text>"
        )
        w = 0.0 if value is None else max(min(value, max_value) * scale, 1.5)
        parts.append(
            f'<rect x="{left}" y="{y + 6}" width="{w:.1f}" height="{row - 12}" '
            f'fill="{color}" rx="2"><title>{escape(label)}: {escape(text)}</title></rect>'
        )
        parts.append(
            f'<text x="{left + w + 6:.1f}" y="{y + row * 0.62:.1f}" font-size="12" '
            f'fill="#374151">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_weekly_precision(
    points: Sequence[tuple[str, float | None, int, bool]],
    floor: float | None,
    title: str,
    width: int = WIDE,
) -> str:
    """Live precision per ISO week (period, precision, matches, flagged) with the floor line."""
    height, left, bottom, top, right = 200, 44, 30, 14, 12
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" '
            'stroke="#e5e7eb"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="12" text-anchor="end" '
            f'fill="#4b5563">{tick * 100:.0f}%</text>'
        )
    if floor is not None:
        parts.append(
            f'<line x1="{left}" y1="{y(floor):.1f}" x2="{width - right}" y2="{y(floor):.1f}" '
            'stroke="#b91c1c" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{width - right}" y="{y(floor) - 5:.1f}" font-size="11" '
            f'text-anchor="end" fill="#b91c1c">floor {floor * 100:.0f}%</text>'
        )
    slot = plot_w / max(len(points), 1)
    label_every = max(1, math.ceil(64 / slot))  # a week label is ~60 units wide
    coords = []
    for i, (period, precision, matches, flagged) in enumerate(points):
        x = left + slot * (i + 0.5)
        if (len(points) - 1 - i) % label_every == 0:  # always label the latest week
            parts.append(
                f'<text x="{x:.1f}" y="{height - 10}" font-size="12" '
                f'text-anchor="middle" fill="#4b5563">{escape(period)}</text>'
            )
        if precision is None:
            continue
        coords.append(f"{x:.1f},{y(precision):.1f}")
        color = STATUS_COLORS["drift"] if flagged else POTABLE_COLOR
        tip = f"{period}: precision {pct(precision)} on {matches} matched samples"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y(precision):.1f}" r="5" fill="{color}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    if len(coords) > 1:
        parts.insert(
            2,
            f'<polyline points="{" ".join(coords)}" fill="none" '
            f'stroke="{POTABLE_COLOR}" stroke-width="2"/>',
        )
    parts.append("</svg>")
    return "".join(parts)


# --- page sections -----------------------------------------------------------------------


def _both(chart: Callable[[int], str]) -> str:
    """The wide and the narrow rendering of a chart; CSS shows one of them."""
    return f'<div class="wide">{chart(WIDE)}</div><div class="narrow">{chart(NARROW)}</div>'


def _card(label: str, value: str, sub: str, testid: str) -> str:
    return (
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value" data-testid="{testid}">{value}</div>'
        f'<div class="sub">{sub}</div></div>'
    )


def live_verdict(row: dict[str, Any], floor: float) -> tuple[str, str]:
    """(css class, words) for a live-precision row: below the floor counts as a flag only when
    the sequential test says so; a point estimate under it is said as such, never as "above
    the floor"."""
    if row["precision"] is None:
        return "none", "not measurable yet"
    if row["flagged"]:
        return "bad", f"below floor {pct(floor, 0)}"
    if row["precision"] < floor:
        return "none", f"below floor {pct(floor, 0)}, not yet evidence of a drop"
    return "good", f"meets floor {pct(floor, 0)}"


def _pill(cls: str, text: str, testid: str) -> str:
    return f'<span class="flag {cls}" data-testid="{testid}">{escape(text)}</span>'


def _interval(interval: Any) -> str:
    """The 95% interval after a precision, and what it means in plain words."""
    if not interval or None in interval:
        return ""
    low, high = pct(interval[0]), pct(interval[1])
    return (
        f' <span data-testid="model-precision-interval">(95% interval {low} to {high})</span>'
        f'<br><small data-testid="model-precision-meaning">Of the readings this model calls '
        f"potable, between {low} and {high} are expected to really be potable. The range "
        f"comes from lab samples the model never trained on - but every later training run "
        f"has compared models on those same samples and kept this one, so it is likely a "
        f"little optimistic; the figure on fresh lab samples below is not.</small>"
    )


def _fresh(fresh: dict[str, Any] | None, model: dict[str, Any]) -> str:
    """The champion's precision on lab samples no promotion test used: shown first."""
    if not fresh or fresh["model_version"] != model["version"]:
        return (
            '<span data-testid="fresh-precision">precision on fresh lab samples: not '
            "measured yet</span><br>"
        )
    if not fresh["enough_evidence"]:
        return (
            f'<span data-testid="fresh-precision">precision on fresh lab samples: not '
            f"enough yet ({_e(fresh['potable_calls'])} of "
            f"{_e(fresh['min_potable_calls'])} potable calls checked by the lab)</span><br>"
        )
    low, high = fresh["interval_95"]
    return (
        f'precision on fresh lab samples <b data-testid="fresh-precision">'
        f"{pct(fresh['precision'])}</b> (95% interval {pct(low)} to {pct(high)}, "
        f"{_e(fresh['potable_calls'])} potable calls checked by lab samples that arrived "
        f"after it was trained and no model comparison has used)<br>"
    )


def _cards(data: dict[str, Any]) -> str:
    model, run = data["model"], data["last_pipeline_run"]
    inf24, inf7 = data["inferences"]["last_24h"], data["inferences"]["last_7d"]
    lab, live, qc = data["lab_samples"], data["live_precision"], data["quality_control"]
    cards = [
        _card(
            "Model in service",
            f"v{_e(model['version'])}" if model else "\u2014",
            (
                f"{_e(model['family'])}, "
                + _fresh(data.get("champion_fresh_precision"), model)
                + "held-out precision (samples reused by every model comparison since) "
                f'<b data-testid="model-precision">{pct(model["held_out_precision"])}</b>'
                + _interval(model.get("held_out_precision_interval"))
            )
            if model
            else "no model promoted yet",
            "model-version",
        ),
        _card(
            "Readings classified, 24 h",
            _e(inf24["total"]),
            f'<span data-testid="inferences-24h-potable-share">{pct(inf24["potable_share"])}</span>'
            f" potable, {_e(inf24['sensors'])} sensors",
            "inferences-24h-total",
        ),
        _card(
            "Readings classified, 7 days",
            _e(inf7["total"]),
            f'<span data-testid="inferences-7d-potable-share">{pct(inf7["potable_share"])}</span>'
            " potable",
            "inferences-7d-total",
        ),
        _card(
            "Lab samples, 7 days",
            _e(lab["last_7d"]),
            f'<span data-testid="lab-samples-total">{_e(lab["total"])}</span> in total, '
            f"last {escape(when(lab['last_received_at']))}",
            "lab-samples-7d",
        ),
    ]
    if live is not None and qc is not None:
        cards.append(
            _card(
                "Live precision (lab-confirmed)",
                pct(live["precision"]),
                f"{_e(live['matches'])} matched samples, model v{_e(live['model_version'])} "
                + _pill(*live_verdict(live, qc["precision_floor"]), "live-precision-flag"),
                "live-precision",
            )
        )
    else:
        cards.append(
            _card(
                "Live precision (lab-confirmed)",
                "\u2014",
                "quality control has not run yet",
                "live-precision",
            )
        )
    drift = qc["drift"] if qc else None
    measured = [f for f in drift["features"] if f["status"] != "insufficient_data"] if drift else []
    if drift and drift["features"] and not measured:
        cards.append(
            _card(
                "Measurements drifting",
                "not enough data",
                _pill("none", "not enough data", "drift-flag")
                + f" {_e(drift['recent_rows'])} recent readings: too few to compare with the "
                "training data",
                "drift-count",
            )
        )
    elif drift and drift["features"]:
        drifting, watch = drift["drifting"], drift["watch"]
        few = len(drift["features"]) - len(measured)
        if drifting:
            sub = _pill("bad", "drift", "drift-flag") + " " + escape(", ".join(drifting))
        elif watch:
            sub = _pill("none", "watch", "drift-flag") + " " + escape(", ".join(watch))
        else:
            sub = _pill("good", "stable", "drift-flag") + " readings look like the training data"
        if few:
            sub += f"; {few} measurement{'s' if few > 1 else ''} with too few readings"
        cards.append(
            _card(
                "Measurements drifting", f"{len(drifting)} of {len(measured)}", sub, "drift-count"
            )
        )
    else:
        cards.append(_card("Measurements drifting", "\u2014", "not computed yet", "drift-count"))
    if run:
        cls, word = {"succeeded": ("good", "ok"), "failed": ("bad", "failed")}.get(
            run["status"], ("none", "running")
        )
        cards.append(
            _card(
                "Last training run",
                _e(run["status"]),
                f"{escape(DECISION_LABELS.get(run['decision'] or '', 'no decision'))}, "
                f"{escape(when(run['finished_at'] or run['started_at']))} "
                + _pill(cls, word, "pipeline-flag"),
                "pipeline-status",
            )
        )
    else:
        cards.append(_card("Last training run", "\u2014", "no run yet", "pipeline-status"))
    return '<section class="cards">' + "".join(cards) + "</section>"


def _legend() -> str:
    return (
        f'<div class="legend"><span><i style="background:{POTABLE_COLOR}"></i>potable</span>'
        f'<span><i style="background:{UNSAFE_COLOR}"></i>not potable</span></div>'
    )


def _activity(data: dict[str, Any]) -> str:
    hourly = data["inferences"]["hourly_24h"]
    daily = data["inferences"]["daily_7d"]
    hour_labels = [
        datetime.fromisoformat(b["end"].replace("Z", "+00:00")).strftime("%H:00") for b in hourly
    ]
    day_labels = [
        datetime.fromisoformat(b["end"].replace("Z", "+00:00")).strftime("%a %d") for b in daily
    ]
    return (
        "<h2>What the model said</h2>"
        + _legend()
        + '<figure data-testid="chart-hourly">'
        + _both(
            lambda w: svg_stacked_bars(
                hourly,
                hour_labels,
                "Readings classified per hour, last 24 hours",
                4 if w > NARROW else 6,
                w,
            )
        )
        + "<figcaption>Per hour, last 24 hours (hour ending, UTC).</figcaption></figure>"
        + '<figure data-testid="chart-daily">'
        + _both(
            lambda w: svg_stacked_bars(
                daily, day_labels, "Readings classified per day, last 7 days", 1, w
            )
        )
        + "<figcaption>Per day, last 7 days (24-hour periods ending now).</figcaption></figure>"
    )


def _sensors(data: dict[str, Any]) -> str:
    week = data["inferences"]["last_7d"]
    day = {s["sensor_id"]: s for s in data["inferences"]["last_24h"]["by_sensor"]}
    if not week["by_sensor"]:
        return "<h2>By sensor</h2><p class='muted'>No readings in the last 7 days.</p>"
    items = [
        (
            s["sensor_id"],
            s["potable_share"],
            POTABLE_COLOR,
            f"{pct(s['potable_share'])} of {s['total']}",
        )
        for s in week["by_sensor"]
    ]
    rows = []
    for s in week["by_sensor"]:
        d = day.get(s["sensor_id"], {"total": 0, "potable_share": None})
        rows.append(
            f'<tr data-testid="sensor-row"><td class="id">{_e(s["sensor_id"])}</td>'
            f'<td class="num">{d["total"]}</td><td class="num">{pct(d["potable_share"])}</td>'
            f'<td class="num">{s["total"]}</td><td class="num">{pct(s["potable_share"])}</td></tr>'
        )
    shown = len(week["by_sensor"])
    more = (
        f"<p class='muted'>The {shown} busiest of {week['sensors']} sensors.</p>"
        if week["sensors"] > shown
        else ""
    )
    return (
        "<h2>By sensor</h2>"
        + '<figure data-testid="chart-sensors">'
        + _both(
            lambda w: svg_hbars(
                items, 1.0, "Share of readings classified potable per sensor, 7 days", width=w
            )
        )
        + "<figcaption>Share of readings classified potable, last 7 days.</figcaption></figure>"
        + '<div class="table-wrap"><table><thead><tr><th>Sensor</th><th class="num">24 h</th>'
        + '<th class="num">potable</th><th class="num">7 days</th><th class="num">potable</th>'
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        + more
    )


def _live(data: dict[str, Any]) -> str:
    qc = data["quality_control"]
    if qc is None:
        return (
            "<h2>Lab confirmation</h2><p class='muted'>Quality control has not run yet: "
            "live precision appears once lab samples are matched to readings.</p>"
        )
    head = (
        f"<p>Each certified lab sample is matched to the reading of the same sensor nearest in "
        f"time, within \u00b1{qc['match_window_minutes']:g} minutes. Of the matched readings the "
        "model called <b>potable</b>, live precision is the share the lab confirmed potable; "
        "recall is the share of lab-potable water the model recognised. A model is flagged "
        "when a sequential test over its lab-checked potable calls, in time order, shows its "
        f"precision falling towards {pct(qc['precision_floor'], 0)}; a week is marked when the "
        "test stood at its limit in that week. "
        f"<span class='muted'>{qc['matched_samples']} of {qc['lab_samples']} lab samples matched; "
        f"computed {escape(when(qc['computed_at']))}.</span></p>"
    )
    charts, rows = [], []
    versions = sorted({r["model_version"] for r in qc["live"]})
    for version in versions:
        weekly = [r for r in qc["live"] if r["model_version"] == version and r["period"] != "all"]
        if weekly:
            charts.append(
                '<figure data-testid="chart-live-precision">'
                + _both(
                    functools.partial(
                        svg_weekly_precision,
                        [(r["period"], r["precision"], r["matches"], r["flagged"]) for r in weekly],
                        qc["precision_floor"],
                        f"Live precision per week, model v{version}",
                    )
                )
                + f"<figcaption>Model v{escape(version)}: live precision per ISO week.</figcaption>"
                "</figure>"
            )
    for r in qc["live"]:
        cls, words = live_verdict(r, qc["precision_floor"])
        short = {"good": "ok", "bad": "below floor"}.get(
            cls, "n/a" if r["precision"] is None else "too few to flag"
        )
        flag = (
            f'<span class="flag {cls}" data-testid="live-row-flag" title="{escape(words)}">'
            f"{escape(short)}</span>"
        )
        rows.append(
            f'<tr data-testid="live-row"><td>v{_e(r["model_version"])}</td>'
            f"<td>{_e(r['period'])}</td>"
            f'<td class="num">{r["matches"]}</td><td class="num">{pct(r["precision"])}</td>'
            f'<td class="num">{pct(r["recall"])}</td>'
            f'<td class="num">{r["true_positives"]}/{r["false_positives"]}/'
            f"{r['false_negatives']}/{r['true_negatives']}</td><td>{flag}</td></tr>"
        )
    table = (
        (
            '<div class="table-wrap"><table><thead><tr><th>Model</th><th>Week</th>'
            '<th class="num">matched</th><th class="num">precision</th>'
            '<th class="num">recall</th><th class="num">TP/FP/FN/TN</th><th></th></tr></thead>'
            "<tbody>" + "".join(rows) + "</tbody></table></div>"
        )
        if rows
        else ("<p class='muted'>No lab sample has matched a reading yet.</p>")
    )
    return "<h2>Lab confirmation</h2>" + head + "".join(charts) + table


def _drift(data: dict[str, Any]) -> str:
    qc = data["quality_control"]
    if qc is None or not qc["drift"]["features"]:
        return ""
    d = qc["drift"]
    items = [
        (
            f["feature"],
            f["psi"],
            STATUS_COLORS[f["status"]],
            f"{_num(f['psi'])} {STATUS_LABELS[f['status']]}",
        )
        for f in d["features"]
    ]
    top = max([0.3] + [min(f["psi"] or 0.0, 1.0) for f in d["features"]])
    return (
        "<h2>Are today's readings like the training data?</h2>"
        f"<p>Population Stability Index per measurement: the {d['recent_rows']} readings of "
        f"{escape(when(d['window_start']))} \u2013 {escape(when(d['window_end']))} against the "
        f"{d['reference_rows']} training rows of the model in service (missing values count as "
        "their own bin); from 0.25 (and beyond noise) <i>watch</i>: unlike the training data. "
        "<i>Drift</i> is a change: a measurement whose last two days differ from the four weeks "
        "before by more than their day-to-day spread allows, or mostly missing.</p>"
        + '<figure data-testid="chart-drift">'
        + _both(
            lambda w: svg_hbars(
                items, top, "PSI per measurement", [(0.1, "0.10"), (0.25, "0.25")], w
            )
        )
        + "</figure>"
    )


def _run(data: dict[str, Any]) -> str:
    run, model = data["last_pipeline_run"], data["model"]
    if run is None:
        return ""
    lines = [
        f"<li>Last training run: <b>{_e(run['status'])}</b>, started "
        f"{escape(when(run['started_at']))}, finished {escape(when(run['finished_at']))}.</li>"
    ]
    if run["decision"]:
        lines.append(
            f"<li>Decision: {escape(DECISION_LABELS.get(run['decision'], run['decision']))}"
            + (
                f" (challenger {_e(run['challenger_family'])}: precision "
                f"{pct(run['challenger_precision'])}, recall {pct(run['challenger_recall'])})"
                if run["challenger_family"]
                else ""
            )
            + ".</li>"
        )
    if model:
        lines.append(
            f"<li>Model in service: v{_e(model['version'])} ({_e(model['family'])}), held-out "
            f"precision {pct(model['held_out_precision'])}, recall {pct(model['held_out_recall'])}"
            f", trained on {_e(model['training_rows'])} samples.</li>"
        )
    return "<h2>Training</h2><ul>" + "".join(lines) + "</ul>"


ACTION_LABELS = {
    "promoted": "promoted",
    "rolled_back": "rolled back",
    "approved": "approved",
    "rejected": "rejected",
    "candidate": "awaiting approval",
    "expired": "expired",
    "blocked": "not promoted (held)",
    "held": "held",
    "released": "released",
}


def _history(data: dict[str, Any]) -> str:
    """Model history (issue 22): every change of the served model in the last 90 days, with
    its evidence, who made it and the alerts around it; the hold in force first."""
    history = data.get("model_history") or {}
    held = history.get("held")
    banner = ""
    if held:
        banner = (
            f'<p class="flag watch" data-testid="model-held">Model promotions are held '
            f"since {escape(when(held['since']))} by {_e(held['by'])}: "
            f"{_e(held['reason'])}. Daily training still runs and records its evidence, "
            "but the model in service does not change.</p>"
        )
    rows = []
    for c in history.get("changes") or []:
        ev = c["evidence"]
        interval = ev.get("held_out_precision_interval")
        evidence = pct(ev["held_out_precision"]) if ev.get("held_out_precision") is not None else ""
        if interval and None not in interval:
            evidence += f" (95% {pct(interval[0])}\u2013{pct(interval[1])})"
        if ev.get("probability_better") is not None:
            evidence += f"; P(better) {pct(ev['probability_better'], 0)}"
        near = "; ".join(f"{a['title']} ({when(a['raised_at'])})" for a in c.get("alerts") or [])
        rows.append(
            f'<tr data-testid="model-change" data-action="{escape(c["action"])}">'
            f"<td>{escape(when(c['when']))}</td>"
            f"<td>{escape(ACTION_LABELS.get(c['action'], c['action']))}"
            + (" (in progress)" if c.get("in_progress") else "")
            + "</td>"
            f"<td>{('v' + _e(c['version'])) if c['version'] else ''}"
            + (
                f" <small>(was v{_e(c['previous_version'])})</small>"
                if c.get("previous_version")
                and c["action"] in ("rolled_back", "approved", "promoted")
                else ""
            )
            + f"</td><td>{_e(c['family'] or '')}</td><td>{escape(evidence)}</td>"
            f'<td>{_e(c["by"])}</td><td class="id">{_e(c["reason"] or "")}</td>'
            f'<td class="muted">{escape(near)}</td></tr>'
        )
    if not rows and not banner:
        return ""
    table = (
        (
            "<table><thead><tr><th>When</th><th>What</th><th>Version</th><th>Family</th>"
            "<th>Evidence (held-out precision)</th><th>Who</th><th>Why</th>"
            "<th>Alerts around it</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        )
        if rows
        else '<p class="muted">No changes.</p>'
    )
    return (
        f'<section aria-label="model history" data-testid="model-history">'
        f"<h2>Model history (last {history.get('days', 90)} days)</h2>{banner}"
        f'<div class="table-wrap">{table}</div></section>'
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>"
    )


def _alerts(data: dict[str, Any]) -> str:
    """Open alerts first: what somebody was told and has not been resolved yet."""
    items = data.get("alerts") or []
    if not items:
        return '<p class="muted" data-testid="alerts-none">No open alerts.</p>'
    rows = []
    for a in items:
        version = (
            f" \u00b7 model {escape(str(a['model_version']))}" if a.get("model_version") else ""
        )
        rows.append(
            f'<li class="{escape(a["severity"])}" data-testid="alert" '
            f'data-event="{escape(a["event"])}">'
            f"<strong>{escape(a['title'])}</strong><br><span>{escape(a.get('detail') or '')}</span>"
            f'<br><span class="muted">since {escape(when(a["raised_at"]))}{version}</span></li>'
        )
    return (
        f'<section aria-label="open alerts"><h2>Open alerts ({len(items)})</h2>'
        f'<ul class="alerts">{"".join(rows)}</ul></section>'
    )


def _freshness(data: dict[str, Any]) -> str:
    """Say so when the figures are not the database's current, exact ones (issue 29): a
    refresh that could not finish (the last good data is shown, with its time), or hours whose
    readings are not counted yet (a backfill being rolled up)."""
    notes = []
    if data.get("stale"):
        notes.append(
            f'<p class="muted" data-testid="stale">These figures are from '
            f"{escape(when(data.get('stale_since')))}: the latest refresh could not finish; "
            "they are refreshed again shortly.</p>"
        )
    pending = (data.get("inferences") or {}).get("pending_hours") or []
    if pending:
        first, last = when(pending[0]), when(pending[-1])
        notes.append(
            f'<p class="muted" data-testid="pending-hours">Readings of {len(pending)} hour(s) '
            f"between {escape(first)} and {escape(last)} are not counted yet (being rolled up); "
            "the totals below are short by them until then.</p>"
        )
    return "".join(notes)


JOB_LABELS = {"maintenance": "Inference-log maintenance", "qc": "Quality control"}


def _jobs(data: dict[str, Any]) -> str:
    """When each scheduled job last succeeded; a failing one with its step."""
    rows = []
    for j in data.get("jobs") or []:
        state = (
            _pill("bad", f"failing in {j['failed_step']} ({j['error_class']})", "job-failing")
            if j["failing"]
            else _pill("good", "ok", "job-ok")
        )
        quarantined = (
            f"{j['quarantined_readings']} reading(s) quarantined"
            if j["quarantined_readings"]
            else ""
        )
        rows.append(
            f'<tr data-testid="job" data-job="{_e(j["job"])}"><td>'
            f"{escape(JOB_LABELS.get(j['job'], j['job']))}</td><td>{state}</td>"
            f"<td>{escape(when(j['last_succeeded_at']))}</td><td>{escape(quarantined)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        '<h2>Scheduled jobs</h2><div class="table-wrap"><table><thead><tr><th>Job</th>'
        "<th>State</th><th>Last success</th><th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def render_html(data: dict[str, Any]) -> str:
    """The whole page for :func:`functions.status.status_data`'s dict."""
    body = (
        "<header><h1>Drinking-water potability \u2014 service status</h1>"
        f'<div class="muted">Updated {escape(when(data["generated_at"]))}. Public, read-only; '
        'the same data as JSON: <a href="?format=json">?format=json</a>.</div></header>'
        "<main>"
        + _freshness(data)
        + _alerts(data)
        + _cards(data)
        + _activity(data)
        + _sensors(data)
        + _live(data)
        + _drift(data)
        + _run(data)
        + _jobs(data)
        + _history(data)
        + "</main>"
        "<footer>Readings are classified by a model trained on certified lab analyses; "
        "lab samples keep checking it. Potable means the model judged the reading safe to "
        "drink.</footer>"
    )
    return _page("Water potability \u2014 status", body)


def render_error_html(retry_after: int) -> str:
    """The page shown when the database cannot be reached (HTTP 503)."""
    return _page(
        "Water potability \u2014 status unavailable",
        "<header><h1>Status temporarily unavailable</h1></header><main><p>The status data "
        f"cannot be read right now. Please try again in {retry_after} seconds.</p></main>",
    )
