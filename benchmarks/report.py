"""
The report: the printed table (reStructuredText simple tables, so the same text
goes into the docs), the verdict on the targets, and the plot.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.core import Panel, Section, Table, Target


def render_table(table: Table) -> str:
    """
    C{table} as a reStructuredText simple table under its title.
    """
    cells = [table.columns, *table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    rule = "  ".join("=" * w for w in widths)

    def line(row: list[str]) -> str:
        out = []
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            # figures right-aligned, names left-aligned
            numeric = i > 0 and (cell[:1].isdigit() or cell == "-")
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    body = [line(r) for r in table.rows]
    return "\n".join([table.title, "", rule, line(table.columns), rule, *body, rule])


def targets_table(targets: list[Target]) -> Table:
    return Table(
        "Targets",
        ["target", "goal", "measured", "met"],
        [
            [
                t.what,
                t.goal,
                _measured(t),
                "yes" if t.met else "NO",
            ]
            for t in targets
        ],
    )


def _measured(target: Target) -> str:
    if target.value is None:
        return "-"
    if target.goal.endswith("x"):
        return f"{target.value:.2f}x"
    if "KiB" in target.goal:
        return f"{target.value:.2f} KiB"
    if target.goal.endswith((" ms", " s")):
        return f"{target.value:,.1f}"
    return f"{target.value:,.0f}"


def render(sections: list[Section], header: str) -> str:
    """
    The whole printed report: a header line, each section's tables, then the
    targets.
    """
    parts = [header]
    for section in sections:
        parts.extend(render_table(t) for t in section.tables)
    targets = [t for s in sections for t in s.targets]
    if targets:
        parts.append(render_table(targets_table(targets)))
    return "\n\n".join(parts) + "\n"


def write_plot(sections: list[Section], path: Path, title: str) -> None:
    """
    Draw every section's panels into one PNG at C{path}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for s in sections for p in s.panels]
    ncols = 2 if len(panels) > 1 else 1
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(7.5 * ncols, 4.4 * nrows), squeeze=False
    )
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw(ax, panel)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: one colour per kind of server, the same in every panel
COLOURS = {
    "netlab": "#1f5fa8",
    "twisted": "#f28e2b",
    "seed": "#59a14f",
    "asyncio": "#e15759",
    "imaplib": "#b07aa1",
    "mbsync": "#76b7b2",
    "aiosmtpd": "#edc948",
    "Dovecot": "#9c755f",
}
OTHER = "#9c9c9c"


def colour(name: str) -> str:
    if name.startswith("netlab") and "+" in name:
        return "#7fa8d8"
    for prefix, value in COLOURS.items():
        if name.startswith(prefix):
            return value
    return OTHER


def _draw(ax: Any, panel: Panel) -> None:
    names = list(panel.series)
    n = max(1, len(names))
    width = 0.8 / n
    present = [v for vs in panel.series.values() for v in vs if v]
    for i, name in enumerate(names):
        values = panel.series[name]
        xs = [c + (i - (n - 1) / 2) * width for c in range(len(panel.categories))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(
            xs,
            heights,
            width,
            label=name,
            color=colour(name),
            edgecolor="black" if name == panel.highlight else "none",
            linewidth=0.8,
        )
        low, high = panel.low.get(name), panel.high.get(name)
        if low and high:
            err = [
                [max(0.0, h - (lo or h)) for h, lo in zip(heights, low, strict=True)],
                [max(0.0, (hi or h) - h) for h, hi in zip(heights, high, strict=True)],
            ]
            ax.errorbar(xs, heights, yerr=err, fmt="none", ecolor="#333333", lw=0.8)
        for bar, v in zip(bars, values, strict=True):
            if v is not None:
                ax.annotate(
                    _short(v),
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=6.5,
                    rotation=90 if n > 3 and len(panel.categories) > 1 else 0,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    ax.set_xticks(range(len(panel.categories)), panel.categories, fontsize=8)
    ax.set_ylabel(panel.ylabel)
    ax.set_title(panel.title, fontsize=10)
    if panel.log and present:
        ax.set_yscale("log")
        ax.set_ylim(min(present) / 2, max(present) * 6)
    elif present:
        ax.set_ylim(0, max(present) * 1.35)
    if panel.reference is not None:
        ax.axhline(panel.reference, color="black", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=7, loc="upper left", ncols=min(n, 3), frameon=False)
    ax.grid(axis="y", alpha=0.3)


def _short(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"
