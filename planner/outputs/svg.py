"""Small, deterministic inline-SVG charts for the HTML report (no JavaScript, no CDN).

Every label is escaped here; the functions return Markup so the template can embed
them as they are. Colours come from CSS variables defined by the report's stylesheet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Series", "Segment", "line_chart", "heatmap", "stacked_bars"]

_W, _H = 640, 320
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 64, 150, 24, 48
_TICKS = 5


@dataclass(frozen=True)
class Series:
    """One line of a line chart."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    css_class: str = "s1"
    dashed: bool = False


@dataclass(frozen=True)
class Segment:
    """One part of a stacked bar."""

    name: str
    value: float
    css_class: str


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if hi <= lo:
        hi = lo + 1.0
    pad = (hi - lo) * 0.05
    return lo - pad if lo > 0 else lo, hi + pad


def _axes(x0: float, x1: float, y0: float, y1: float, x_label: str, y_label: str, x_ticks: Sequence[float]) -> list[str]:
    w, h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    out = [f'<line class="axis" x1="{_PAD_L}" y1="{_PAD_T + h}" x2="{_PAD_L + w}" y2="{_PAD_T + h}"/>',
           f'<line class="axis" x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_PAD_T + h}"/>']
    for i in range(_TICKS + 1):
        v = y0 + (y1 - y0) * i / _TICKS
        y = _PAD_T + h - h * i / _TICKS
        out.append(f'<line class="grid" x1="{_PAD_L}" y1="{y:.1f}" x2="{_PAD_L + w}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for v in x_ticks:
        x = _PAD_L + w * (v - x0) / (x1 - x0)
        out.append(f'<text class="tick" x="{x:.1f}" y="{_PAD_T + h + 16}" text-anchor="middle">{_fmt(v)}</text>')
    out.append(f'<text class="label" x="{_PAD_L + w / 2:.1f}" y="{_H - 8}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text class="label" transform="translate(14,{_PAD_T + h / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    return out


def _svg(title: str, body: list[str], height: int = _H) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" role="img" '
            f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>')
    return Markup(head + "".join(body) + "</svg>")


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str,
               marker: tuple[float, float, str] | None = None, y_floor: float | None = None) -> Markup:
    """Lines over a shared x axis, a legend on the right, and an optional labelled marker point."""
    xs = [x for s in series for x in s.xs]
    ys = [y for s in series for y in s.ys] + ([y_floor] if y_floor is not None else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = _nice_range(min(ys), max(ys))
    w, h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def px(x: float, y: float) -> tuple[float, float]:
        return _PAD_L + w * (x - x0) / (x1 - x0 or 1), _PAD_T + h - h * (y - y0) / (y1 - y0)

    body = _axes(x0, x1, y0, y1, x_label, y_label, sorted(set(xs))[:: max(1, len(set(xs)) // 8)])
    if y_floor is not None:
        _, yf = px(x0, y_floor)
        body.append(f'<line class="ref" x1="{_PAD_L}" y1="{yf:.1f}" x2="{_PAD_L + w}" y2="{yf:.1f}"/>')
    for i, s in enumerate(series):
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, y) for x, y in zip(s.xs, s.ys)))
        dash = ' stroke-dasharray="5,4"' if s.dashed else ""
        body.append(f'<polyline class="line {s.css_class}" points="{pts}"{dash}><title>{escape(s.name)}</title></polyline>')
        ly = _PAD_T + 14 + 18 * i
        body.append(f'<line class="line {s.css_class}" x1="{_W - _PAD_R + 12}" y1="{ly - 4}" x2="{_W - _PAD_R + 32}" y2="{ly - 4}"{dash}/>')
        body.append(f'<text class="legend" x="{_W - _PAD_R + 38}" y="{ly}">{escape(s.name)}</text>')
    if marker is not None:
        mx, my = px(marker[0], marker[1])
        body.append(f'<circle class="marker" cx="{mx:.1f}" cy="{my:.1f}" r="5"><title>{escape(marker[2])}</title></circle>')
        body.append(f'<text class="marker-label" x="{mx + 8:.1f}" y="{my - 8:.1f}">{escape(marker[2])}</text>')
    return _svg(title, body)


def _heat_class(v: float, lo: float, hi: float) -> int:
    """Colour step 0..8 of a value between lo and hi."""
    return max(0, min(8, int(8 * (v - lo) / (hi - lo or 1))))


def heatmap(values: Sequence[Sequence[float]], row_labels: Sequence[str], col_labels: Sequence[str], title: str,
            x_label: str, y_label: str, highlight: tuple[int, int] | None = None) -> Markup:
    """A grid of coloured cells with the value written in each (rows top to bottom)."""
    rows, cols = len(values), len(values[0])
    w, h = _W - _PAD_L - 90, _H - _PAD_T - _PAD_B
    cw, ch = w / cols, h / rows
    flat = [v for row in values for v in row]
    lo, hi = min(flat), max(flat)
    body = []
    for r, row in enumerate(values):
        y = _PAD_T + r * ch
        body.append(f'<text class="tick" x="{_PAD_L - 6}" y="{y + ch / 2 + 4:.1f}" text-anchor="end">{escape(row_labels[r])}</text>')
        for c, v in enumerate(row):
            x = _PAD_L + c * cw
            body.append(f'<rect class="heat h{_heat_class(v, lo, hi)}" x="{x:.1f}" y="{y:.1f}" width="{cw:.1f}" '
                        f'height="{ch:.1f}"><title>{escape(row_labels[r])}, {escape(col_labels[c])}: {v:.2f}x</title></rect>')
            if cw >= 22:
                shade = _heat_class(v, lo, hi)
                tone = "cell dark" if shade >= 5 else "cell"  # light text on the dark end of the scale
                body.append(f'<text class="{tone}" x="{x + cw / 2:.1f}" y="{y + ch / 2 + 3:.1f}" text-anchor="middle">{v:.1f}</text>')
    for c, lab in enumerate(col_labels):
        body.append(f'<text class="tick" x="{_PAD_L + (c + 0.5) * cw:.1f}" y="{_PAD_T + h + 16}" text-anchor="middle">{escape(lab)}</text>')
    if highlight is not None:
        r, c = highlight
        body.append(f'<rect class="highlight" x="{_PAD_L + c * cw:.1f}" y="{_PAD_T + r * ch:.1f}" width="{cw:.1f}" height="{ch:.1f}"/>')
    body.append(f'<text class="label" x="{_PAD_L + w / 2:.1f}" y="{_H - 8}" text-anchor="middle">{escape(x_label)}</text>')
    body.append(f'<text class="label" transform="translate(14,{_PAD_T + h / 2:.1f}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
    lx = _W - 70
    for i in range(9):
        v = lo + (hi - lo) * i / 8
        y = _PAD_T + h - (i + 1) * h / 9
        body.append(f'<rect class="heat h{i}" x="{lx}" y="{y:.1f}" width="14" height="{h / 9:.1f}"/>')
        body.append(f'<text class="tick" x="{lx + 18}" y="{y + h / 18 + 4:.1f}">{v:.2f}x</text>')
    return _svg(title, body)


def stacked_bars(bars: Sequence[tuple[str, Sequence[Segment]]], title: str, unit: str, limit: float | None = None,
                 limit_label: str = "") -> Markup:
    """Horizontal stacked bars (label above each bar), a legend, and an optional limit line (capacity)."""
    left, right = 16, 90
    w = _W - left - right
    row_h = 56
    total = max([sum(s.value for s in segs) for _, segs in bars] + [limit or 0]) or 1.0
    body = []
    legend: dict[str, str] = {}
    for i, (label, segs) in enumerate(bars):
        y = _PAD_T + row_h * i
        body.append(f'<text class="legend" x="{left}" y="{y + 12}">{escape(label)}</text>')
        x = float(left)
        for s in segs:
            sw = w * s.value / total
            legend.setdefault(s.name, s.css_class)
            body.append(f'<rect class="bar {s.css_class}" x="{x:.1f}" y="{y + 18}" width="{max(sw, 0):.1f}" height="24">'
                        f'<title>{escape(s.name)}: {s.value:.2f} {escape(unit)}</title></rect>')
            x += sw
        body.append(f'<text class="tick" x="{x + 4:.1f}" y="{y + 35}">{sum(s.value for s in segs):.1f} {escape(unit)}</text>')
    axis_y = _PAD_T + row_h * len(bars) + 4
    body.append(f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{left + w}" y2="{axis_y}"/>')
    for i in range(_TICKS + 1):
        v = total * i / _TICKS
        x = left + w * i / _TICKS
        body.append(f'<text class="tick" x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle">{_fmt(v)}</text>')
    body.append(f'<text class="label" x="{left + w / 2:.1f}" y="{axis_y + 30}" text-anchor="middle">{escape(unit)}</text>')
    if limit is not None:
        lx = left + w * limit / total
        body.append(f'<line class="ref" x1="{lx:.1f}" y1="{_PAD_T}" x2="{lx:.1f}" y2="{axis_y}"/>')
        body.append(f'<text class="marker-label" x="{lx:.1f}" y="{_PAD_T - 8}" text-anchor="end">{escape(limit_label)}</text>')
    per_row = 3
    for j, (name, cls) in enumerate(legend.items()):
        lx, ly = left + 205 * (j % per_row), axis_y + 52 + 18 * (j // per_row)
        body.append(f'<rect class="bar {cls}" x="{lx}" y="{ly - 10}" width="12" height="12"/>')
        body.append(f'<text class="legend" x="{lx + 16}" y="{ly}">{escape(name)}</text>')
    height = axis_y + 52 + 18 * ((len(legend) + per_row - 1) // per_row)
    return _svg(title, body, height=height)
