"""The digest and the report decide "target met" by one rule, and agree on the rate (pure).

The supervisors' digest (`digest.Compliance`) and the published report
(`report_values.Figures`) are built from the same counts here, for targets and counts where a
floating-point product and an exact fraction disagree (``0.55 * 100`` is
``55.00000000000001``), and where they agree.
"""

from __future__ import annotations

import tomllib
from fractions import Fraction
from pathlib import Path

import jinja2
import pytest

from mailbot.reporting.report import Figures
from mailbot.standards.compliance import exact_target
from mailbot.standards.digest import Compliance


def digest_line(target: float, met: int, decided: int) -> Compliance:
    late = (decided - met) // 2
    return Compliance(
        commitment="info_reply",
        label="Réponse à une demande de renseignements",
        target=target,
        met=met,
        late=late,
        open_late=decided - met - late,
        pending=3,
    )


def report_figures(met: int, decided: int) -> Figures:
    late = (decided - met) // 2
    return Figures(
        cases=decided + 3,
        met=met,
        late=late,
        open_late=decided - met - late,
        pending=3,
        median_days=None,
        p90_days=None,
        days_on_hold=0,
        cases_with_hold=0,
    )


@pytest.mark.parametrize(
    ("target", "met", "decided", "expected"),
    [
        (0.55, 55, 100, True),  # 0.55 * 100 == 55.00000000000001
        (0.55, 54, 100, False),
        (0.55, 11, 20, True),
        (0.07, 7, 100, True),  # 0.07 * 100 == 7.000000000000001
        (0.14, 7, 50, True),
        (0.28, 7, 25, True),
        (0.56, 14, 25, True),
        (0.68, 51, 75, True),
        (0.95, 19, 20, True),  # exactly at the target
        (0.95, 18, 20, False),
        (0.95, 189, 199, False),  # 94.97 %: close is not enough
        (0.85, 17, 20, True),
        (0.85, 16, 20, False),
        (0.57, 57, 100, True),  # 0.57 * 100 == 56.99999999999999
        (0.57, 56, 100, False),
        (0.9, 9, 10, True),
        (0.925, 37, 40, True),  # a target with a tenth of a percent
        (0.3, 3, 10, True),  # the 0.3 a configuration says
        (0.1 + 0.2, 3, 10, False),  # a computed 0.30000000000000004 is above 3/10
        (1.0, 20, 20, True),
        (1.0, 19, 20, False),
        (0.5, 0, 1, False),
    ],
)
def test_the_digest_and_the_report_agree(
    target: float, met: int, decided: int, expected: bool
) -> None:
    digest, report = digest_line(target, met, decided), report_figures(met, decided)
    assert digest.decided == report.decided == decided
    assert digest.rate == report.rate == met / decided
    assert digest.meets_target is expected
    assert report.meets(target) is expected


def test_every_whole_percent_target_at_its_threshold() -> None:
    """Targets 1 % to 100 %, 1 to 100 decided cases, the fewest met cases that reach it."""
    for percent in range(1, 101):
        target = percent / 100  # the float a configuration's "0.07" becomes
        for decided in range(1, 101):
            threshold = -(-percent * decided // 100)  # ceil: the fewest met that reach it
            for met in (threshold - 1, threshold):
                if not 0 <= met <= decided:
                    continue
                expected = 100 * met >= percent * decided
                digest, report = digest_line(target, met, decided), report_figures(met, decided)
                assert (digest.meets_target, report.meets(target)) == (expected, expected), (
                    f"{met} of {decided} against {percent} %"
                )
                assert digest.rate == report.rate


def test_nothing_decided_has_no_rate_and_no_verdict() -> None:
    digest, report = digest_line(0.9, 0, 0), report_figures(0, 0)
    assert digest.rate is None and report.rate is None
    assert digest.meets_target is None and report.meets(0.9) is None
    assert report_figures(3, 4).meets(None) is None


@pytest.mark.parametrize(
    ("written", "exact"),
    [
        ("0.55", Fraction(55, 100)),
        ("0.95", Fraction(19, 20)),
        ("0.925", Fraction(37, 40)),
        ("55e-2", Fraction(11, 20)),
        ("1.0", Fraction(1)),
        ("0.1", Fraction(1, 10)),
    ],
)
def test_a_target_is_the_decimal_the_configuration_wrote(written: str, exact: Fraction) -> None:
    target = tomllib.loads(f"target = {written}")["target"]
    assert isinstance(target, float)
    assert exact_target(target) == exact
    assert exact_target(exact) == exact


PERCENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parents[2] / "templates"))
).from_string('{% from "_staff.j2" import percent_fr %}{{ percent_fr(rate) }}')


@pytest.mark.parametrize(
    ("met", "decided", "shown"),
    [(189, 199, "94,9 %"), (19, 20, "95 %"), (57, 100, "57 %"), (1, 3, "33,3 %"), (2, 3, "66,6 %")],
)
def test_the_digest_never_shows_a_rate_that_contradicts_its_verdict(
    met: int, decided: int, shown: str
) -> None:
    """Rounded down: 189 of 199 is below 95 %, and the digest must not print "95 %"."""
    assert PERCENT.render(rate=met / decided) == shown
