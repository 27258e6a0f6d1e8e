"""
What every benchmark module takes and gives back.

A benchmark module (listed in L{benchmarks.MODULES}) has a C{NAME} and a
function C{run(context: Context) -> Section}.  The harness runs the modules in
order and reports their sections together: their tables make up the printed
table, their panels the plot, their targets the verdict, and their raw figures
go into the JSON file.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Context:
    """
    What a benchmark module needs: the built load generator, where servers
    write their logs, how long and how often to measure, and where progress
    goes.
    """

    loadgen: Path
    log_dir: Path
    quick: bool
    repeats: int
    warmup: float
    duration: float
    progress: Callable[[str], None]
    #: run only these cases (echo scenario keys, "connections", ...); None: all
    cases: frozenset[str] | None = None
    #: the CPUs the servers and the load generator are pinned to (None: any)
    server_cpus: frozenset[int] | None = None
    loadgen_cpus: frozenset[int] | None = None
    #: experimental servers to measure too (echo: "twisted-transport", "write-now")
    experiments: frozenset[str] = frozenset()
    #: the scale benchmark's mailbox size (None: its default)
    scale_size: int | None = None

    def wants(self, case: str) -> bool:
        return self.cases is None or case in self.cases


@dataclass
class Table:
    """
    A block of the printed table: a heading, column names and rows of text.
    """

    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Target:
    """
    A goal checked against a figure of this run (C{value} is a ratio against a
    peer measured in the same run, or an absolute figure).
    """

    what: str
    goal: str
    value: float | None
    met: bool


@dataclass
class Panel:
    """
    One chart of the plot: for each category (a scenario), one bar per series
    (a server), the median with the spread over repeats.
    """

    title: str
    ylabel: str
    categories: list[str]
    series: dict[str, list[float | None]]
    low: dict[str, list[float | None]] = field(default_factory=dict)
    high: dict[str, list[float | None]] = field(default_factory=dict)
    log: bool = False
    highlight: str | None = None
    #: draw a dashed line at this value (a ratio of 1.0, say)
    reference: float | None = None


@dataclass
class Section:
    """
    The results of one benchmark module.
    """

    name: str
    tables: list[Table]
    targets: list[Target]
    panels: list[Panel]
    raw: dict[str, Any]
    #: measurements that did not come off (the run goes on without them)
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        return cls(
            name=data["name"],
            tables=[Table(**t) for t in data["tables"]],
            targets=[Target(**t) for t in data["targets"]],
            panels=[Panel(**p) for p in data["panels"]],
            raw=data["raw"],
            failures=list(data.get("failures", [])),
        )


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def paired_ratio(
    by_round: Mapping[tuple[Any, ...], Mapping[str, Any]],
    repeats: int,
    numerator: tuple[Any, ...],
    denominator: tuple[Any, ...],
    figure: str,
) -> float | None:
    """
    The median over rounds of C{numerator}'s C{figure} over C{denominator}'s,
    both taken from the same round (measured minutes apart at most), where
    C{by_round} maps C{(round, *key)} to a run's figures.  Rounds where
    either run failed or a figure is zero are left out.
    """
    values: list[float | None] = []
    for round_ in range(repeats):
        a = by_round.get((round_, *numerator))
        b = by_round.get((round_, *denominator))
        if a and b and a[figure] and b[figure]:
            values.append(a[figure] / b[figure])
    return median(values)


def columns(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
    keys: Iterable[str],
    names: Iterable[str],
    figure: str,
) -> dict[str, list[Any]]:
    """
    For a plot: each name's C{figure} in every scenario of C{keys}, from a
    summary indexed C{summary[key][name][figure]}.
    """
    keys = list(keys)
    return {n: [summary[k][n][figure] for k in keys] for n in names}


def rotated(items: Sequence[Any], by: int) -> list[Any]:
    """
    C{items} rotated left by C{by}: successive rounds start with a different
    server, so none is always measured first or last.
    """
    if not items:
        return []
    by %= len(items)
    return [*items[by:], *items[:by]]


def fmt(value: float | None, digits: int = 0) -> str:
    """
    A figure for the table: thousands separated, C{-} when missing.
    """
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
