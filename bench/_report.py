"""What every benchmark hands the harness (``bench/run.py``): a section of the report and its headline figures.

Each benchmark module has ``measure(quick: bool) -> Section``. ``bench/run.py`` calls them all and
writes ``BENCHMARKS.md``; each module's ``main`` runs it alone (``standalone``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import _machine


@dataclass(frozen=True)
class Headline:
    """One row of the summary table at the top of ``BENCHMARKS.md``.

    ``ratio`` is ours ÷ ``reference``, both measured in the same run (None where the figure is not a
    speed, e.g. a hypervolume or a trial count). ``met`` says whether ``goal`` is met (None: no goal).
    """

    area: str
    what: str
    figure: str
    reference: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None


@dataclass
class Section:
    """A benchmark's part of the report: markdown ``body`` (headings from ``###`` down) and its headlines."""

    title: str
    body: str
    headlines: list[Headline] = field(default_factory=list)
    #: Library versions this benchmark depends on, for the report's machine line (e.g. "ray 2.60.0").
    versions: tuple[str, ...] = ()
    seconds: float = 0.0


def timed_measure(measure: Callable[[bool], Section], quick: bool) -> Section:
    start = time.perf_counter()
    section = measure(quick)
    section.seconds = time.perf_counter() - start
    return section


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    if ratio < 0.01:
        return f"{ratio:.4f}×"
    return f"{ratio:.2f}×" if ratio < 100 else f"{ratio:.0f}×"


def met_word(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "**not met**")


def summary_table(sections: Sequence[Section]) -> list[str]:
    lines = [
        "| area | what | figure | reference (same run) | ours ÷ reference | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for section in sections:
        for h in section.headlines:
            lines.append(
                f"| {h.area} | {h.what} | {h.figure} | {h.reference} | {fmt_ratio(h.ratio)} | {h.goal} | "
                f"{met_word(h.met)} |"
            )
    return lines


def header(title: str, command: str, versions: Sequence[str]) -> list[str]:
    return [
        f"# {title}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {_machine.machine(*versions)}",
        f"- command: `{command}`",
    ]


def standalone(measure: Callable[[bool], Section], script: str, argv: Sequence[str] | None, doc: str | None) -> int:
    """``main`` of one benchmark run alone: measure, print the section, write it to ``--output`` if given."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one repeat")
    parser.add_argument("--output", type=Path, default=None, help="also write the results to this markdown file")
    args = parser.parse_args(argv)
    section = timed_measure(measure, args.quick)
    write_alone(section, f"python bench/{script}" + (" --quick" if args.quick else ""), args.output)
    return 0


def write_alone(section: Section, command: str, output: Path | None) -> None:
    """Print one benchmark's report (header, its summary rows, its section) and write it to ``output``."""
    lines = [*header(section.title, command, section.versions), "", *summary_table([section]), "", section.body]
    text = "\n".join(lines).rstrip() + "\n"
    if output is not None:
        output.write_text(text)
    print(text)
