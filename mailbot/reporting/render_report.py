"""The service-standards report written out: a table, JSON, CSV or a French HTML page (pure).

The HTML page is ``templates/report.html`` with two inline SVG charts whose geometry
`mailbot.reporting.charts` computes. Rates are printed as fractions of 1 rounded to 4 places
(JSON, CSV) or as percentages with one decimal (table); the verdict "target met" is decided
when the report is built, never from a rounded rate.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from mailbot.reporting.charts import bar_chart, trend_chart
from mailbot.reporting.values import Case, Figures, Report

FORMATS = ("table", "json", "csv", "html")
# Shown in the queue column of a line that adds up every queue of the report.
ALL_QUEUES = "*"
TEMPLATE = "report.html"


def render_report(report: Report, fmt: str, templates_dir: Path) -> str:
    """The report as `fmt` (table | json | csv | html); the case listing when it was requested.

    With details, ``csv`` is the listing of cases (one row per case; the summary is the
    ``csv`` without details), ``json`` gains a ``cases`` list, ``table`` and ``html`` end with
    the listing. ``templates_dir`` holds ``report.html``.
    """
    if fmt == "table":
        return _render_table(report)
    if fmt == "json":
        return json.dumps(report_json(report), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return _render_csv(report)
    if fmt == "html":
        return _render_html(report, templates_dir)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _figures_json(figures: Figures, target_met: bool | None) -> dict[str, Any]:
    return {
        "cases": figures.cases,
        "met": figures.met,
        "late": figures.late,
        "open_late": figures.open_late,
        "pending": figures.pending,
        "decided": figures.decided,
        "rate": round(figures.rate, 4) if figures.rate is not None else None,
        "target_met": target_met,
        "median_days": figures.median_days,
        "p90_days": figures.p90_days,
        "days_on_hold": figures.days_on_hold,
        "cases_with_hold": figures.cases_with_hold,
    }


def _case_json(case: Case) -> dict[str, Any]:
    return {
        "ref": case.ref,
        "commitment": case.commitment,
        "queue": case.queue,
        "clock_start": case.clock_start.isoformat(),
        "due_date": case.due_date.isoformat(),
        "met_at": case.met_at.isoformat() if case.met_at else None,
        "outcome": case.outcome,
        "delay_days": case.delay_days,
        "days_on_hold": case.days_on_hold,
        "status": case.status,
        "first_receipt": case.first_receipt.isoformat() if case.first_receipt else None,
        "incomplete": _spells(case),
    }


def _spells(case: Case) -> str:
    """Each time the request was declared incomplete and completed, office time:
    "2025-12-04 09:02 > 2025-12-12 17:05" (">" then nothing while it still waits)."""
    return "; ".join(
        f"{_minute(declared)} > {_minute(completed) if completed else ''}".rstrip()
        for declared, completed in case.incomplete
    )


def _minute(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M %z")


def report_json(report: Report) -> dict[str, Any]:
    """The JSON shape of the report (dates ISO, rates as fractions of 1 rounded to 4 places)."""
    data: dict[str, Any] = {
        "organisation": report.organisation,
        "since": report.request.since.isoformat(),
        "until": report.request.until.isoformat(),
        "queue": report.request.queue,
        "as_of": report.as_of.isoformat(),
        "timezone": report.timezone,
        "commitments": [
            {
                "id": item.commitment,
                "label": item.label,
                "business_days": item.business_days,
                "target": item.target,
                "all_queues": _figures_json(item.total.figures, item.total.target_met),
                "queues": [
                    {"queue": line.queue, **_figures_json(line.figures, line.target_met)}
                    for line in item.queues
                ],
                "trend": [
                    {
                        "month": point.month.strftime("%Y-%m"),
                        "met": point.met,
                        "decided": point.decided,
                        "pending": point.pending,
                        "rate": round(point.rate, 4) if point.rate is not None else None,
                    }
                    for point in item.trend
                ],
            }
            for item in report.commitments
        ],
    }
    if report.request.details:
        data["cases"] = [_case_json(case) for case in report.cases]
    return data


SUMMARY_COLUMNS = (
    "commitment",
    "queue",
    "business_days",
    "target",
    "cases",
    "met",
    "late",
    "open_late",
    "pending",
    "decided",
    "rate",
    "target_met",
    "median_days",
    "p90_days",
    "days_on_hold",
    "cases_with_hold",
)
CASE_COLUMNS = (
    "ref",
    "commitment",
    "queue",
    "clock_start",
    "due_date",
    "met_at",
    "outcome",
    "delay_days",
    "days_on_hold",
    "status",
    "first_receipt",
    "incomplete",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _summary_rows(report: Report) -> list[dict[str, Any]]:
    rows = []
    for item in report.commitments:
        for line in (item.total, *item.queues):
            rows.append(
                {
                    "commitment": item.commitment,
                    "queue": line.queue or ALL_QUEUES,
                    "business_days": item.business_days,
                    "target": item.target,
                    **_figures_json(line.figures, line.target_met),
                }
            )
    return rows


def _render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if report.request.details:
        writer.writerow(CASE_COLUMNS)
        for case in report.cases:
            values = _case_json(case)
            writer.writerow([_cell(values[column]) for column in CASE_COLUMNS])
    else:
        writer.writerow(SUMMARY_COLUMNS)
        for row in _summary_rows(report):
            writer.writerow([_cell(row[column]) for column in SUMMARY_COLUMNS])
    return out.getvalue()


def _percent(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def _columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Iterable[int]
) -> list[str]:
    """Aligned text columns: those at the `numeric` indexes to the right, the rest to the left."""
    right = frozenset(numeric)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _render_table(report: Report) -> str:
    request = report.request
    as_of = report.office_time(report.as_of)
    lines = [
        f"Service standards: clock starts {request.since} to {request.until}, "
        f"queue {request.queue or 'all'}, as of {as_of:%Y-%m-%d %H:%M} ({report.timezone})",
        "rate = met / (met + late + open_late); pending cases are not in the rate; "
        "delays in business days",
        "",
    ]
    header = (
        "commitment",
        "queue",
        "cases",
        "met",
        "late",
        "open late",
        "pending",
        "rate",
        "target",
        "target met",
        "median",
        "p90",
        "days on hold",
    )
    rows = []
    for item in report.commitments:
        for line in (item.total, *item.queues):
            f = line.figures
            rows.append(
                (
                    item.commitment if line.queue is None else "",
                    line.queue or ALL_QUEUES,
                    str(f.cases),
                    str(f.met),
                    str(f.late),
                    str(f.open_late),
                    str(f.pending),
                    _percent(f.rate),
                    _percent(item.target),
                    _cell(line.target_met) or "-",
                    _cell(f.median_days) or "-",
                    _cell(f.p90_days) or "-",
                    str(f.days_on_hold),
                )
            )
    lines.extend(_columns(header, rows, numeric=range(2, len(header))))
    if request.details:
        lines += ["", f"cases ({len(report.cases)})", ""]
        case_rows = [
            (
                c.ref,
                c.commitment,
                c.queue,
                c.clock_start.isoformat(),
                c.due_date.isoformat(),
                report.office_time(c.met_at).strftime("%Y-%m-%d %H:%M") if c.met_at else "-",
                c.outcome,
                _cell(c.delay_days) or "-",
                str(c.days_on_hold),
                c.status,
                c.first_receipt.isoformat() if c.first_receipt else "-",
                _spells(c) or "-",
            )
            for c in report.cases
        ]
        case_header = (
            "ref",
            "commitment",
            "queue",
            "clock start",
            "due date",
            "met at",
            "outcome",
            "delay",
            "days on hold",
            "status",
            "first receipt",
            "incomplete > completed",
        )
        lines.extend(_columns(case_header, case_rows, numeric=(7, 8)) if case_rows else ["(none)"])
    return "\n".join(lines) + "\n"


def _render_html(report: Report, templates_dir: Path) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE).render(
        report=report,
        as_of_local=report.office_time(report.as_of),
        bars=bar_chart(report),
        trend=trend_chart(report),
        cases=[
            (case, report.office_time(case.met_at) if case.met_at else None)
            for case in report.cases
        ],
    )
