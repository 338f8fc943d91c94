"""The benchmark chart, as hand-written SVG (no plotting library): instructions per request per
configuration (bars), and instructions per request against the number of policies (log x)."""
from __future__ import annotations

import math
from xml.sax.saxutils import escape

WIDTH = 820
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
COLORS = {"main": "#4e79a7", "ours": "#e15759", "scaling": "#f28e2b", "peer": "#76b7b2"}


def _text(x, y, s, size=12, anchor="start", weight="normal", fill="#222", halo=False) -> str:
    extra = " stroke='white' stroke-width='3' paint-order='stroke'" if halo else ""
    return (f"<text x='{x:.1f}' y='{y:.1f}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'{extra}>{escape(str(s))}</text>")


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def bars(rows: list[tuple[str, float, str, str]], top: float, title: str,
         marks: list[tuple[float, str]] = ()) -> tuple[list[str], float]:
    """rows: (label, value in K instructions, colour key, annotation); marks: dashed vertical
    lines (value, label), e.g. native and the budget."""
    out = [_text(20, top + 18, title, 15, weight="bold")]
    left, right, bar_h, gap = 170, WIDTH - 150, 20, 8
    y0 = top + 44
    vmax = _nice_max(max((v for _, v, _, _ in rows), default=1))
    scale = (right - left) / vmax
    n = len(rows)
    height = n * (bar_h + gap)
    ticks = 5
    for i in range(ticks + 1):
        x = left + (right - left) * i / ticks
        out.append(f"<line x1='{x:.1f}' y1='{y0 - 4}' x2='{x:.1f}' y2='{y0 + height}' "
                   f"stroke='#ddd'/>")
        out.append(_text(x, y0 + height + 16, f"{vmax * i / ticks:.0f} K", 11, "middle", fill="#555"))
    for j, (v, label) in enumerate(marks):
        x = left + v * scale
        out.append(f"<line x1='{x:.1f}' y1='{y0 - 6}' x2='{x:.1f}' y2='{y0 + height}' "
                   f"stroke='#555' stroke-dasharray='4,3'/>")
        out.append(_text(x + (-4 if j % 2 == 0 else 4), y0 - 9, label, 10,
                         "end" if j % 2 == 0 else "start", fill="#555"))
    for i, (label, v, key, note) in enumerate(rows):
        y = y0 + i * (bar_h + gap)
        out.append(_text(left - 8, y + 15, label, 12, "end"))
        out.append(f"<rect x='{left}' y='{y}' width='{max(v * scale, 1):.1f}' height='{bar_h}' "
                   f"fill='{COLORS[key]}'/>")
        out.append(_text(left + v * scale + 6, y + 15, f"{v:.1f} K  {note}", 11, fill="#333", halo=True))
    out.append(_text((left + right) / 2, y0 + height + 32, "instructions per request "
                     "(callgrind, thousands)", 11, "middle", fill="#555"))
    return out, y0 + height + 44 - top


def scaling(points: list[tuple[int, float]], top: float, title: str) -> tuple[list[str], float]:
    """points: (number of policies, K instructions per request), x on a log scale, y from 0."""
    out = [_text(20, top + 18, title, 15, weight="bold")]
    left, right, plot_top, plot_h = 170, WIDTH - 150, top + 40, 200
    bottom = plot_top + plot_h
    xs = [p for p, _ in points]
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    span = (hi - lo) or 1
    vmax = _nice_max(max(v for _, v in points) * 1.15)
    xpos = lambda p: left + (right - left) * (math.log10(p) - lo) / span  # noqa: E731
    ypos = lambda v: bottom - plot_h * v / vmax  # noqa: E731
    for i in range(5):
        v = vmax * i / 4
        out.append(f"<line x1='{left}' y1='{ypos(v):.1f}' x2='{right}' y2='{ypos(v):.1f}' "
                   f"stroke='#ddd'/>")
        out.append(_text(left - 8, ypos(v) + 4, f"{v:.0f} K", 11, "end", fill="#555"))
    base = points[0][1]
    path = " ".join(f"{'M' if i == 0 else 'L'}{xpos(p):.1f},{ypos(v):.1f}"
                    for i, (p, v) in enumerate(points))
    out.append(f"<path d='{path}' fill='none' stroke='{COLORS['scaling']}' stroke-width='2.5'/>")
    for p, v in points:
        out.append(f"<circle cx='{xpos(p):.1f}' cy='{ypos(v):.1f}' r='4.5' "
                   f"fill='{COLORS['scaling']}'/>")
        out.append(_text(xpos(p), ypos(v) - 12, f"{v:.1f} K ({v / base:.3f}x)", 11, "middle", halo=True))
        out.append(_text(xpos(p), bottom + 16, f"{p}", 11, "middle", fill="#555"))
    out.append(_text((left + right) / 2, bottom + 32, "host-matched policies in the configuration "
                     "(log scale); the request hits the middle one", 11, "middle", fill="#555"))
    return out, bottom + 44 - top


def chart(bar_rows, scaling_points, subtitle: str, marks=()) -> str:
    parts = [_text(20, 24, "Canary Router: cost per request in Envoy", 17, weight="bold"),
             _text(20, 44, subtitle, 11, fill="#555")]
    y = 56
    body, h = bars(bar_rows, y, "Instructions per request, by configuration", marks)
    parts += body
    y += h + 10
    if len(scaling_points) >= 2:
        body, h = scaling(scaling_points, y, "Cost against the number of policies")
        parts += body
        y += h
    height = y + 10
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height:.0f}' "
            f"viewBox='0 0 {WIDTH} {height:.0f}'>\n<rect width='100%' height='100%' fill='white'/>\n"
            + "\n".join(parts) + "\n</svg>\n")
