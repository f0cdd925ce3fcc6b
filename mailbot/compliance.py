"""Whether a commitment's target is met: the one rule the digest and the report share (pure).

A commitment's **rate** is ``met / decided``, where *decided* counts the cases whose outcome
is known (met, late, open and late; pending cases are left out). The **target is met** when
the rate is at least the commitment's target, compared exactly, with no rounding and no
floating-point product: 55 met out of 100 meets a 55 % target, 19 out of 20 meets 95 %.

Targets come from the TOML configuration as floats. A float such as ``0.55`` is not 55/100
but the nearest binary fraction to it (a little above), so ``55 >= 0.55 * 100`` is false.
The target is therefore read back as the decimal that was written, the shortest decimal that
gives that float (``repr``), and compared as an exact fraction: ``0.55`` is 11/20. A float
computed rather than written (``0.1 + 0.2``) is taken as the decimal it prints as
(``0.30000000000000004``), never rounded to a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


def exact_target(target: float | Fraction) -> Fraction:
    """The target as the exact fraction of the decimal written in the configuration."""
    if isinstance(target, float):
        # repr is the shortest decimal that reads back as this float: what the TOML said.
        return Fraction(repr(target))
    return Fraction(target)


def rate(met: int, decided: int) -> float | None:
    """The share of the decided cases that met the commitment, for display; None if none."""
    return met / decided if decided else None


def meets(met: int, decided: int, target: float | Fraction | None) -> bool | None:
    """Whether `met` of `decided` reaches `target`, exactly; None without a target or a case."""
    if target is None or not decided:
        return None
    return Fraction(met, decided) >= exact_target(target)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """The outcomes of a commitment's cases: the counts both the digest and the report show."""

    met: int
    late: int
    open_late: int
    pending: int

    @property
    def decided(self) -> int:
        """The rate's denominator: every case whose outcome is known."""
        return self.met + self.late + self.open_late

    @property
    def rate(self) -> float | None:
        return rate(self.met, self.decided)

    def meets(self, target: float | Fraction | None) -> bool | None:
        """Whether the rate reaches `target`, exactly; None without a target or a case."""
        return meets(self.met, self.decided, target)
