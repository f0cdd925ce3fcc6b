"""The geometry of the report's two SVG charts, which ``templates/report.html`` draws (pure).

A bar per commitment for its rate against its target (every queue of the report), and a line
per commitment for its monthly rate. Coordinates are in SVG user units; nothing is drawn here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mailbot.reporting.values import Report

PALETTE = ("#1f5fa8", "#c2571a", "#2e7d32", "#7b3fa0", "#b8860b", "#00838f", "#ad1457")


@dataclass(frozen=True, slots=True)
class Bar:
    """One commitment's row in the bar chart: the rate's bar and the target's mark."""

    commitment: str
    label: str
    y: float  # top of the bar
    length: float  # 0 when no case is decided
    target_x: float | None
    rate: float | None
    target: float | None
    target_met: bool | None


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    label_right: int  # labels end here (text-anchor: end)
    plot_left: int
    plot_width: int
    plot_top: int
    plot_bottom: int
    bar_height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, int], ...]  # (x, percent)


def bar_chart(report: Report) -> BarChart:
    """Rate against target per commitment (every queue of the report), as horizontal bars."""
    width, label_right, plot_left, plot_width = 800, 390, 400, 300
    top, row, bar_height = 24, 30, 18
    bars = []
    for index, item in enumerate(report.commitments):
        figures = item.total.figures
        bars.append(
            Bar(
                commitment=item.commitment,
                label=item.label,
                y=top + index * row + (row - bar_height) / 2,
                length=round((figures.rate or 0.0) * plot_width, 1),
                target_x=(
                    round(plot_left + item.target * plot_width, 1)
                    if item.target is not None
                    else None
                ),
                rate=figures.rate,
                target=item.target,
                target_met=item.total.target_met,
            )
        )
    bottom = top + row * len(bars)
    return BarChart(
        width=width,
        height=bottom + 28,
        label_right=label_right,
        plot_left=plot_left,
        plot_width=plot_width,
        plot_top=top,
        plot_bottom=bottom,
        bar_height=bar_height,
        bars=tuple(bars),
        ticks=tuple((plot_left + plot_width * p / 100, p) for p in range(0, 101, 25)),
    )


@dataclass(frozen=True, slots=True)
class TrendPoint:
    x: float
    y: float
    month: date
    rate: float
    met: int
    decided: int


@dataclass(frozen=True, slots=True)
class TrendSeries:
    """One commitment's monthly rate; `paths` are the runs of months that have a decided case."""

    commitment: str
    label: str
    color: str
    target_y: float | None
    points: tuple[TrendPoint, ...]
    paths: tuple[str, ...]  # SVG polyline points, "x,y x,y ..."
    legend_y: float


@dataclass(frozen=True, slots=True)
class TrendChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    x_ticks: tuple[tuple[float, date, bool], ...]  # (x, month, show its label)
    y_ticks: tuple[tuple[float, int], ...]  # (y, percent)
    series: tuple[TrendSeries, ...]


def trend_chart(report: Report) -> TrendChart:
    """The monthly rate of each commitment that has a decided case, with its target, as lines."""
    width, left, right, top, bottom = 800, 56, 780, 16, 236
    months = report.months
    step = (right - left) / max(len(months) - 1, 1)
    xs = {
        month: round(left + step * index if len(months) > 1 else (left + right) / 2, 1)
        for index, month in enumerate(months)
    }

    def y_of(rate: float) -> float:
        return round(bottom - rate * (bottom - top), 1)

    every = -(-len(months) // 12)  # at most 12 month labels
    legend_top = bottom + 48
    series = []
    drawn = [item for item in report.commitments if any(p.decided for p in item.trend)]
    for index, item in enumerate(drawn):
        points: list[TrendPoint] = []
        paths: list[str] = []
        run: list[str] = []
        for point in item.trend:
            if point.rate is None:
                if run:
                    paths.append(" ".join(run))
                run = []
                continue
            plotted = TrendPoint(
                x=xs[point.month],
                y=y_of(point.rate),
                month=point.month,
                rate=point.rate,
                met=point.met,
                decided=point.decided,
            )
            points.append(plotted)
            run.append(f"{plotted.x},{plotted.y}")
        if run:
            paths.append(" ".join(run))
        series.append(
            TrendSeries(
                commitment=item.commitment,
                label=item.label,
                color=PALETTE[index % len(PALETTE)],
                target_y=y_of(item.target) if item.target is not None else None,
                points=tuple(points),
                paths=tuple(paths),
                legend_y=legend_top + 20 * index,
            )
        )
    return TrendChart(
        width=width,
        height=legend_top + 20 * len(series) + 8,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        x_ticks=tuple((xs[m], m, i % every == 0) for i, m in enumerate(months)),
        y_ticks=tuple((y_of(p / 100), p) for p in range(0, 101, 20)),
        series=tuple(series),
    )
