"""HTML and inline-SVG rendering of the status page (pure: data dict in, markup out).

The markup is Jinja2 templates (``functions/templates/status/``) with autoescape on: every
value from the database - sensor ids, model versions, reasons, alert texts - is escaped by
the template engine, not by hand (issue 30: one forgotten ``escape`` in the f-strings this
replaced was one XSS). What stays Python is the arithmetic: the chart helpers below are pure
functions from numbers to geometry (coordinates, labels, tooltips as plain text), and the
templates' ``charts.html.j2`` macros draw it.

The page is self-contained - one HTML document with inline CSS and server-rendered SVG, no
scripts, fonts or CDN - so it loads anywhere, fast, and cannot leak visitors to third parties.
Charts use a ``viewBox`` and scale to the screen; the layout is a single column on a phone.
Unicode bidi and other format characters (category Cf: U+202E reverses the text after it) are
shown as ``\\u202e``-style escapes, so a sensor id cannot disguise itself or what follows it.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

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
JOB_LABELS = {"maintenance": "Inference-log maintenance", "qc": "Quality control"}
TEMPLATES = Path(__file__).resolve().parent / "templates"
"""Shipped with the functions: Terraform zips ``functions/**`` (terraform/functions.tf), the
image installs them as package data (pyproject.toml)."""


# --- formatting (also the templates' filters) ----------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    """0.6234 -> '62.3%'; None -> an em dash (not measurable yet)."""
    return "\u2014" if value is None else f"{value * 100:.{digits}f}%"


def when(value: str | None) -> str:
    """ISO timestamp -> 'YYYY-MM-DD HH:MM UTC' (the page states times in UTC only)."""
    if not value:
        return "\u2014"
    return _parse(value).strftime("%Y-%m-%d %H:%M UTC")


def num(value: float | None, digits: int = 3) -> str:
    return "\u2014" if value is None else f"{value:.{digits}f}"


def f1(value: float) -> str:
    """An SVG coordinate: one decimal (a plain function: ~3x cheaper than ``'%.1f'|format``,
    and a chart draws hundreds of them)."""
    return f"{value:.1f}"


def text(value: Any) -> str:
    """A database value as display text: None as an em dash; format characters (Unicode
    category Cf: bidi overrides, zero-width joiners) as visible ``\\uXXXX`` escapes."""
    if value is None:
        return "\u2014"
    s = str(value)
    if s.isascii() or not any(unicodedata.category(c) == "Cf" for c in s):
        return s
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) == "Cf" else c for c in s)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- SVG charts: geometry only; templates/status/charts.html.j2 draws it --------------------


def svg_stacked_bars(
    buckets: Sequence[dict[str, Any]],
    labels: Sequence[str],
    title: str,
    label_every: int = 1,
    width: int = WIDE,
) -> dict[str, Any]:
    """Bars of inferences per bucket, potable (bottom) and not potable (top)."""
    height, left, bottom, top = 200, 40, 28, 12
    plot_h = height - bottom - top
    top_value = max([b["total"] for b in buckets] + [1])
    slot = (width - left - 8) / max(len(buckets), 1)
    y0 = top + plot_h
    bars = []
    for i, (b, label) in enumerate(zip(buckets, labels, strict=False)):
        x = left + i * slot + slot * 0.12
        w = slot * 0.76
        h_potable = plot_h * b["potable"] / top_value
        h_unsafe = plot_h * (b["total"] - b["potable"]) / top_value
        bars.append(
            {
                "tip": f"{label}: {b['total']} inferences, {b['potable']} potable",
                "x": x,
                "w": w,
                "potable": (y0 - h_potable, h_potable),
                "unsafe": (y0 - h_potable - h_unsafe, h_unsafe),
                "tick": label if i % label_every == 0 or i == len(buckets) - 1 else None,
            }
        )
    return {
        "width": width,
        "height": height,
        "title": title,
        "left": left,
        "top": top,
        "base": y0,
        "right": width - 8,
        "top_value": top_value,
        "bars": bars,
        "colors": (POTABLE_COLOR, UNSAFE_COLOR),
    }


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
) -> dict[str, Any]:
    """Horizontal bars: (label, value or None, colour, text shown after the bar), with
    dashed vertical markers (thresholds) at the given values."""
    row, top = 30, 18
    left, right = (150, 96) if width > NARROW else (112, 86)
    height = top + row * max(len(items), 1) + 8
    span = width - left - right
    scale = span / max_value if max_value > 0 else 0
    fits = max(int((left - 12) / LABEL_CHAR_PX), 4)
    rows = []
    for i, (label, value, color, shown) in enumerate(items):
        y = top + i * row
        w = 0.0 if value is None else max(min(value, max_value) * scale, 1.5)
        label = text(label)
        rows.append(
            {
                "label": label,
                "clipped": clip(label, fits),
                "y": y,
                "text_y": y + row * 0.62,
                "w": w,
                "color": color,
                "text": shown,
            }
        )
    return {
        "width": width,
        "height": height,
        "title": title,
        "left": left,
        "top": top,
        "row": row,
        "markers": [
            {"x": left + min(at, max_value) * scale, "text": marker} for at, marker in markers
        ],
        "rows": rows,
    }


def svg_weekly_precision(
    points: Sequence[tuple[str, float | None, int, bool]],
    floor: float | None,
    title: str,
    width: int = WIDE,
) -> dict[str, Any]:
    """Live precision per ISO week (period, precision, matches, flagged) with the floor line."""
    height, left, bottom, top, right = 200, 44, 30, 14, 12
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    slot = plot_w / max(len(points), 1)
    label_every = max(1, math.ceil(64 / slot))  # a week label is ~60 units wide
    marks = []
    for i, (period, precision, matches, flagged) in enumerate(points):
        marks.append(
            {
                "x": left + slot * (i + 0.5),
                # always label the latest week
                "tick": period if (len(points) - 1 - i) % label_every == 0 else None,
                "y": None if precision is None else y(precision),
                "color": STATUS_COLORS["drift"] if flagged else POTABLE_COLOR,
                "tip": f"{period}: precision {pct(precision)} on {matches} matched samples",
            }
        )
    dots = [m for m in marks if m["y"] is not None]
    return {
        "width": width,
        "height": height,
        "title": title,
        "left": left,
        "right": width - right,
        "label_y": height - 10,
        "grid": [{"y": y(t), "text": f"{t * 100:.0f}%"} for t in (0.0, 0.5, 1.0)],
        "floor": None if floor is None else {"y": y(floor), "text": f"floor {floor * 100:.0f}%"},
        "marks": marks,
        "line": " ".join(f"{d['x']:.1f},{d['y']:.1f}" for d in dots) if len(dots) > 1 else "",
        "color": POTABLE_COLOR,
    }


# --- trend charts (issue 33): one time axis of 90 days, model changes marked on it ----------

VERSION_SHAPES = ("circle", "square", "triangle", "diamond")
"""Each model version's marker shape, so versions are told apart without colour."""
VERSION_COLORS = ("#0f766e", "#7c3aed", "#c2410c", "#1d4ed8")
SHAPE_SYMBOLS = {"circle": "\u25cf", "square": "\u25a0", "triangle": "\u25b2", "diamond": "\u25c6"}
"""The same shapes as text, for the legends."""
STATUS_SHAPES = {"ok": "circle", "watch": "triangle", "drift": "square"}
"""Drift status as a marker shape (with its colour): readable without colour."""
TREND_HEIGHT = 220
DRIFT_CAP = 0.5
"""PSI drawn up to this (0.25 is drift already); a higher value sits on the band's top, its
figure in the tooltip and the table."""


def _day_start(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


class TimeAxis:
    """x positions of moments between the first day's start and the last day's end."""

    def __init__(self, first_day: str, last_day: str, left: float, right: float) -> None:
        self.start = _day_start(first_day)
        self.end = _day_start(last_day) + timedelta(days=1)
        self.left, self.right = left, right
        self.days = (self.end - self.start).days

    def x(self, moment: datetime) -> float:
        share = (moment - self.start) / (self.end - self.start)
        return self.left + (self.right - self.left) * min(max(share, 0.0), 1.0)

    def day_x(self, day: str) -> float:
        """The middle of a day."""
        return self.x(_day_start(day) + timedelta(hours=12))

    def slot(self) -> float:
        return (self.right - self.left) / max(self.days, 1)

    def ticks(self, narrow: bool) -> list[dict[str, Any]]:
        """Month starts (and the 15th on the wide chart), labelled ``Mon DD``."""
        out = []
        for k in range(self.days):
            day = self.start + timedelta(days=k)
            if day.day == 1 or (day.day == 15 and not narrow):
                out.append({"x": self.x(day), "text": day.strftime("%b %d")})
        return out

    def changes(self, changes: Sequence[dict[str, Any]], top: float) -> list[dict[str, Any]]:
        """Model changes as vertical lines, labelled with the version served after them; a
        label that would overlap the previous one is left to the tooltip."""
        out, last_label = [], -1e9
        for c in changes:
            moment = _parse(c["when"])
            if not self.start <= moment < self.end:
                continue
            x = self.x(moment)
            arrow = "\u21a9" if c["action"] == "rolled_back" else ""
            label = f"{arrow}v{text(c['version'])}" if c["version"] else ""
            show = x - last_label >= 30
            if show:
                last_label = x
            was = f" (was v{text(c['previous_version'])})" if c.get("previous_version") else ""
            out.append(
                {
                    "x": x,
                    "label": label if show else "",
                    "label_y": top - 6,
                    "tip": f"{when(c['when'])}: {ACTION_LABELS.get(c['action'], c['action'])} "
                    f"v{text(c['version'])}{was}",
                }
            )
        return out


def _frame(trends: dict[str, Any], width: int, top: int = 26) -> tuple[TimeAxis, dict[str, Any]]:
    left, right, bottom = (48 if width > NARROW else 40), 12, 30
    axis = TimeAxis(trends["first_day"], trends["last_day"], left, width - right)
    frame = {
        "width": width,
        "height": TREND_HEIGHT,
        "left": left,
        "right": width - right,
        "top": top,
        "base": TREND_HEIGHT - bottom,
        "label_y": TREND_HEIGHT - 10,
        "ticks": axis.ticks(width <= NARROW),
        "changes": axis.changes(trends["model_changes"], top),
    }
    return axis, frame


def versions_of(trends: dict[str, Any]) -> list[dict[str, str]]:
    """Each model version of the precision trend with its shape, colour and legend symbol."""
    names = sorted({r["model_version"] for r in trends["live_precision"]}, key=_version_key)
    return [
        {
            "version": v,
            "shape": VERSION_SHAPES[i % len(VERSION_SHAPES)],
            "color": VERSION_COLORS[i % len(VERSION_COLORS)],
            "symbol": SHAPE_SYMBOLS[VERSION_SHAPES[i % len(VERSION_SHAPES)]],
        }
        for i, v in enumerate(names)
    ]


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


def svg_trend_precision(trends: dict[str, Any], title: str, width: int = WIDE) -> dict[str, Any]:
    """Live precision per model version and ISO week (a marker in the middle of the week, its
    95% interval as a bar), the precision floor, the model changes on the time axis."""
    axis, frame = _frame(trends, width)
    top, base = frame["top"], frame["base"]

    def y(v: float) -> float:
        return base - (base - top) * v

    series = []
    for v in versions_of(trends):
        points = []
        for r in trends["live_precision"]:
            if r["model_version"] != v["version"] or r["precision"] is None:
                continue
            x = axis.x(_day_start(r["week_start"]) + timedelta(days=3, hours=12))
            low, high = r["interval_95"] or (r["precision"], r["precision"])
            interval = f" (95% interval {pct(low)} to {pct(high)})" if r["interval_95"] else ""
            points.append(
                {
                    "x": x,
                    "y": y(r["precision"]),
                    "low": y(low),
                    "high": y(high),
                    "tip": f"v{text(v['version'])}, week {r['period']}: precision "
                    f"{pct(r['precision'])}{interval} on {r['potable_calls']} potable calls "
                    "checked by the lab",
                }
            )
        line = " ".join(f"{p['x']:.1f},{p['y']:.1f}" for p in points) if len(points) > 1 else ""
        series.append({**v, "points": points, "line": line})
    floor = trends["precision_floor"]
    return {
        **frame,
        "title": title,
        "grid": [{"y": y(t), "text": f"{t * 100:.0f}%"} for t in (0.0, 0.5, 1.0)],
        "floor": None if floor is None else {"y": y(floor), "text": f"floor {floor * 100:.0f}%"},
        "series": series,
        "desc": f"Live precision per ISO week of model versions "
        f"{', '.join('v' + text(s['version']) for s in series) or 'none'} from "
        f"{trends['first_day']} to {trends['last_day']}, each with its 95% interval; "
        f"{len(frame['changes'])} model changes marked.",
    }


def svg_trend_traffic(trends: dict[str, Any], title: str, width: int = WIDE) -> dict[str, Any]:
    """Readings per day (bars; a day not all of whose hours are counted yet is drawn hatched)
    and, below them on its own scale, the potable share per day (a line)."""
    axis, frame = _frame(trends, width)
    top, base = frame["top"], frame["base"]
    split = top + (base - top) * 0.58  # bars above, share below
    bars_top, share_top = top, split + 16
    peak = max([d["total"] for d in trends["traffic"]] + [1])
    slot = axis.slot()
    bars, shares = [], []
    for d in trends["traffic"]:
        x = axis.day_x(d["day"])
        h = (split - bars_top) * d["total"] / peak
        partial = d["hours_counted"] < 24
        tip = f"{d['day']}: {d['total']:,} readings, {pct(d['potable_share'])} potable" + (
            f" ({d['hours_counted']} of 24 hours counted)" if partial else ""
        )
        bars.append(
            {
                "x": x - slot * 0.4,
                "w": slot * 0.8,
                "y": split - h,
                "h": h,
                "tip": tip,
                "partial": partial,
            }
        )
        if d["potable_share"] is not None:
            shares.append({"x": x, "y": base - (base - share_top) * d["potable_share"], "tip": tip})
    return {
        **frame,
        "title": title,
        "split": split,
        "peak": f"{peak:,}",
        "share_top": share_top,
        "bars": bars,
        "shares": shares,
        "line": " ".join(f"{p['x']:.1f},{p['y']:.1f}" for p in shares) if len(shares) > 1 else "",
        "desc": f"Readings classified per day from {trends['first_day']} to "
        f"{trends['last_day']} (bars, up to {peak:,} a day) and the share called potable "
        f"(line, 0 to 100%); {len(frame['changes'])} model changes marked.",
    }


def svg_trend_drift(trends: dict[str, Any], title: str, width: int = WIDE) -> dict[str, Any]:
    """PSI per measurement per day (one band per measurement, the watch and drift thresholds
    dashed in each, the marker's shape its status), the latest value written at the right."""
    band, gap, top = 34, 6, 26
    features = [f["feature"] for f in trends["drift_summary"]]
    height = top + (band + gap) * len(features) + 24
    label_w, value_w = (108, 92) if width > NARROW else (84, 64)
    axis = TimeAxis(trends["first_day"], trends["last_day"], label_w, width - value_w)
    rows = []
    summary = {s["feature"]: s for s in trends["drift_summary"]}
    days = [
        (d["day"], axis.day_x(d["day"]), {f["feature"]: f for f in d["features"]})
        for d in trends["drift"]
    ]
    for i, name in enumerate(features):
        y0 = top + i * (band + gap)

        def y(psi: float, y0: float = y0) -> float:
            return y0 + band - band * min(psi, DRIFT_CAP) / DRIFT_CAP

        points = []
        for day, x, measured in days:
            f = measured.get(name)
            if f is None or f["psi"] is None or f["status"] not in STATUS_SHAPES:
                continue
            points.append(
                {
                    "x": x,
                    "y": y(f["psi"]),
                    "marked": f["status"] != "ok",  # stable days: the line alone (page size)
                    "shape": STATUS_SHAPES[f["status"]],
                    "color": STATUS_COLORS[f["status"]],
                    "tip": f"{name}, {day}: PSI {num(f['psi'])} ({STATUS_LABELS[f['status']]})",
                }
            )
        s = summary[name]
        latest = (
            f"{num(s['latest_psi'])} {STATUS_LABELS[s['latest_status']]}"
            if s["measured_days"]
            else "no data"
        )
        rows.append(
            {
                "label": name,
                "clipped": clip(name, int((label_w - 12) / LABEL_CHAR_PX)),
                "top": y0,
                "bottom": y0 + band,
                "text_y": y0 + band * 0.6,
                "watch": y(0.10),
                "drift": y(0.25),
                "points": points,
                "line": " ".join(f"{p['x']:.1f},{p['y']:.1f}" for p in points)
                if len(points) > 1
                else "",
                "latest": latest,
            }
        )
    return {
        "width": width,
        "height": height,
        "title": title,
        "left": label_w,
        "right": width - value_w,
        "value_x": width - value_w + 6,
        "label_y": height - 8,
        "ticks": axis.ticks(width <= NARROW),
        "changes": axis.changes(trends["model_changes"], top),
        "top": top,
        "rows": rows,
        "desc": f"Population Stability Index of each measurement per day from "
        f"{trends['first_day']} to {trends['last_day']}, from the day's last quality-control "
        f"run ({len(trends['drift'])} days with a run); dashed lines at 0.10 (watch) and 0.25 "
        "(drift).",
    }


def both(chart: Callable[[int], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The wide and the narrow geometry of a chart; CSS shows one of them."""
    return {"wide": chart(WIDE), "narrow": chart(NARROW)}


# --- what the page says, computed (the templates only lay it out) ----------------------------


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


def live_short(cls: str, row: dict[str, Any]) -> str:
    """The pill's word in the live-precision table (the full verdict is its tooltip)."""
    return {"good": "ok", "bad": "below floor"}.get(
        cls, "n/a" if row["precision"] is None else "too few to flag"
    )


def _charts(data: Mapping[str, Any]) -> dict[str, Any]:
    """The geometry of every chart on the page, both widths."""
    inf = data["inferences"]
    hourly, daily = inf["hourly_24h"], inf["daily_7d"]
    hour_labels = [_parse(b["end"]).strftime("%H:00") for b in hourly]
    day_labels = [_parse(b["end"]).strftime("%a %d") for b in daily]
    charts: dict[str, Any] = {
        "hourly": both(
            lambda w: svg_stacked_bars(
                hourly,
                hour_labels,
                "Readings classified per hour, last 24 hours",
                4 if w > NARROW else 6,
                w,
            )
        ),
        "daily": both(
            lambda w: svg_stacked_bars(
                daily, day_labels, "Readings classified per day, last 7 days", 1, w
            )
        ),
    }
    week = inf["last_7d"]["by_sensor"]
    if week:
        items = [
            (
                s["sensor_id"],
                s["potable_share"],
                POTABLE_COLOR,
                f"{pct(s['potable_share'])} of {s['total']}",
            )
            for s in week
        ]
        charts["sensors"] = both(
            lambda w: svg_hbars(
                items, 1.0, "Share of readings classified potable per sensor, 7 days", width=w
            )
        )
    qc = data["quality_control"]
    if qc is not None:
        charts["live"] = []
        for version in sorted({r["model_version"] for r in qc["live"]}):
            weekly = [
                (r["period"], r["precision"], r["matches"], r["flagged"])
                for r in qc["live"]
                if r["model_version"] == version and r["period"] != "all"
            ]
            if weekly:
                title = f"Live precision per week, model v{version}"
                charts["live"].append(
                    {
                        "version": version,
                        "chart": both(
                            functools.partial(
                                svg_weekly_precision, weekly, qc["precision_floor"], title
                            )
                        ),
                    }
                )
        features = qc["drift"]["features"]
        if features:
            items = [
                (
                    f["feature"],
                    f["psi"],
                    STATUS_COLORS[f["status"]],
                    f"{num(f['psi'])} {STATUS_LABELS[f['status']]}",
                )
                for f in features
            ]
            top = max([0.3] + [min(f["psi"] or 0.0, 1.0) for f in features])
            charts["drift"] = both(
                lambda w: svg_hbars(
                    items, top, "PSI per measurement", [(0.1, "0.10"), (0.25, "0.25")], w
                )
            )
    trends = data.get("trends")
    if trends:
        charts["trend_traffic"] = both(
            functools.partial(svg_trend_traffic, trends, "Readings and potable share per day")
        )
        if trends["live_precision"]:
            charts["trend_precision"] = both(
                functools.partial(
                    svg_trend_precision, trends, "Live precision per model version and week"
                )
            )
        if trends["drift"]:
            charts["trend_drift"] = both(
                functools.partial(svg_trend_drift, trends, "Drift per measurement per day")
            )
    return charts


def _drift_card(qc: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the "Measurements drifting" card says (None: not computed yet)."""
    drift = qc["drift"] if qc else None
    if not drift or not drift["features"]:
        return None
    measured = [f for f in drift["features"] if f["status"] != "insufficient_data"]
    if not measured:
        return {"measured": 0, "recent_rows": drift["recent_rows"]}
    drifting, watch = drift["drifting"], drift["watch"]
    if drifting:
        pill, names = ("bad", "drift"), ", ".join(drifting)
    elif watch:
        pill, names = ("none", "watch"), ", ".join(watch)
    else:
        pill, names = ("good", "stable"), ""
    return {
        "measured": len(measured),
        "drifting": len(drifting),
        "pill": pill,
        "names": names,
        "few": len(drift["features"]) - len(measured),
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ }} is escaped unless it is Markup (the templates' own)
        undefined=jinja2.StrictUndefined,  # a misspelt key fails the render, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(pct=pct, when=when, num=num, text=text, f1=f1)
    env.globals.update(
        live_verdict=live_verdict,
        live_short=live_short,
        DECISION_LABELS=DECISION_LABELS,
        ACTION_LABELS=ACTION_LABELS,
        JOB_LABELS=JOB_LABELS,
        STATUS_LABELS=STATUS_LABELS,
        STATUS_SHAPES=STATUS_SHAPES,
        SHAPE_SYMBOLS=SHAPE_SYMBOLS,
        versions_of=versions_of,
        POTABLE_COLOR=POTABLE_COLOR,
        UNSAFE_COLOR=UNSAFE_COLOR,
    )
    return env


ENVIRONMENT = _environment()
"""Loaded once per instance; templates are compiled on first use and cached."""


def render_html(data: Mapping[str, Any]) -> str:
    """The whole page for :func:`functions.status.status_data`'s dict."""
    return ENVIRONMENT.get_template("status/page.html.j2").render(
        d=data,
        charts=_charts(data),
        drift_card=_drift_card(data["quality_control"]),
    )


def render_error_html(retry_after: int) -> str:
    """The page shown when the database cannot be reached (HTTP 503)."""
    return ENVIRONMENT.get_template("status/error.html.j2").render(retry_after=retry_after)
