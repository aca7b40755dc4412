"""Every benchmark of attention-nas in one run; writes ``BENCHMARKS.md`` at the repository root.

    .venv/bin/python bench/run.py            # about 15 minutes on 2 cores (make bench)
    .venv/bin/python bench/run.py --quick    # a smoke run, under 3 minutes (a test runs it)
    .venv/bin/python bench/run.py --only kernels,training   # re-measure some, keep the others' sections

Each benchmark is a module of ``bench/`` with ``measure(quick) -> Section`` (``bench/_report.py``),
and can run alone (``python bench/kernels.py``). Every speed figure is a ratio against a reference
measured in the same run; the summary table at the top of the report gathers the headline figures
and whether each goal is met. Run it on an otherwise idle machine: anything else running makes every
figure slower and noisier.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import _machine  # noqa: E402
import _report  # noqa: E402

#: (module, what it measures), in the order they run and appear.
BENCHMARKS = (
    ("kernels", "attention kernels against a 3×3 convolution and the naive N×N form"),
    ("training", "training throughput against MONAI BasicUNet and AttentionUnet"),
    ("search_space", "the pre-training memory estimate against measured peaks"),
    ("orchestration", "our search path against bare Ray Tune + OptunaSearch; time outside training"),
    ("dashboard", "loading a 5,000-trial study, server side and in Chromium"),
    ("search_efficiency", "trials to a good front: NSGA-II, TPE and random on a tabular benchmark"),
    ("main_job", "the README's main job"),
    ("proof", "proof on real data: the DRIVE joint-attention ablation; Kvasir-SEG search vs its no-attention twin"),
    ("gpu", "the GPU path: AMP/channels-last throughput, packed trials, kernels, memory (CUDA only)"),
)


def run(names: Sequence[str], quick: bool) -> tuple[list[_report.Section], list[str]]:
    sections, failures = [], []
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(name)
            section = _report.timed_measure(module.measure, quick)
        except Exception:  # one broken benchmark must not lose the others' figures
            error = traceback.format_exc()
            failures.append(name)
            section = _report.Section(title=name, body=f"**Failed:**\n\n```\n{error[-3000:]}\n```")
            section.seconds = time.perf_counter() - start
        print(f"[bench] {name}: {section.seconds:.0f} s", flush=True)
        sections.append(section)
    return sections, failures


def render(sections: Sequence[_report.Section], command: str, total_s: float, load: tuple[float, float]) -> str:
    versions = dict.fromkeys(v for s in sections for v in s.versions)  # ordered, unique
    lines = [
        *_report.header("attention-nas benchmarks", command, list(versions)),
        f"- code: {_machine.commit()}",
        f"- whole run: {total_s / 60:.1f} min; load average (1 min) at the start / the end: "
        f"{load[0]:.1f} / {load[1]:.1f}",
        "",
        "Every ratio is ours ÷ a reference measured in the same run (below 1: ours is faster or smaller), "
        "except where the row says otherwise. The sections below give every figure and how it was measured.",
        "",
        "## Summary",
        "",
        *_report.summary_table(sections),
    ]
    for section in sections:
        lines += ["", f"## {section.title}", "", f"*{section.seconds:.0f} s.*", "", section.body]
    return "\n".join(lines).rstrip() + "\n"


def _area(row: str) -> str:
    return row.split("|")[1].strip()


def merge(existing: str, sections: Sequence[_report.Section], command: str, load: tuple[float, float]) -> str:
    """``existing`` (a BENCHMARKS.md) with ``sections`` measured again: each replaces the section of
    its title (or is added at the end), headed by when, where and at which commit it was measured,
    and its headlines replace the summary rows of the same areas. Every other section and row is
    kept as it was measured."""
    head, _, rest = existing.partition("\n## Summary\n")
    summary_part, _, body = rest.partition("\n## ")
    body = "## " + body if body else ""
    chunks: dict[str, str] = {}
    for chunk in ("\n" + body).split("\n## ")[1:]:
        title, _, text = chunk.partition("\n")
        chunks[title.strip()] = text.strip("\n")
    versions = dict.fromkeys(v for s in sections for v in s.versions)
    header_rows = _report.summary_table([])
    rows = [line for line in summary_part.splitlines() if line.startswith("|") and line not in header_rows]
    fresh: dict[str, list[str]] = {}
    for row in _report.summary_table(sections)[len(header_rows) :]:
        fresh.setdefault(_area(row), []).append(row)
    replaced = set(fresh)
    summary: list[str] = []
    for row in rows:  # each re-measured area's rows go where its first old row was
        area = _area(row)
        if area not in replaced:
            summary.append(row)
        elif area in fresh:
            summary += fresh.pop(area)
    summary += [row for group in fresh.values() for row in group]
    for section in sections:
        chunks[section.title] = "\n".join(
            [
                f"*Measured apart from the whole run above: `{command}` on "
                f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC ({_machine.machine(*versions)}; "
                f"{_machine.commit()}; {section.seconds / 60:.1f} min; load average (1 min) at the start / the end: "
                f"{load[0]:.1f} / {load[1]:.1f}).*",
                "",
                section.body,
            ]
        )
    lines = [
        head.rstrip("\n"),
        "",
        "## Summary",
        "",
        *header_rows,
        *summary,
    ]
    for title, text in chunks.items():
        lines += ["", f"## {title}", "", text]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every benchmark (under 3 minutes)")
    parser.add_argument(
        "--only", default=None, help="comma-separated benchmarks: " + ", ".join(n for n, _ in BENCHMARKS)
    )
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    names = [n for n, _ in BENCHMARKS]
    if args.only:
        chosen = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in names]
        if unknown:
            parser.error(f"--only: unknown benchmark {unknown[0]!r}; expected some of {', '.join(names)}")
        names = [n for n in names if n in chosen]
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    sections, failures = run(names, args.quick)
    total = time.perf_counter() - start
    shown = (
        ["python bench/run.py"] + (["--quick"] if args.quick else []) + ([f"--only {args.only}"] if args.only else [])
    )
    load = (load_start, os.getloadavg()[0])
    if args.only and args.output.exists():  # the other benchmarks' figures stay as they were measured
        text = merge(args.output.read_text(), sections, " ".join(shown), load)
    else:
        text = render(sections, " ".join(shown), total, load)
    args.output.write_text(text)
    print(f"[bench] wrote {args.output} in {total / 60:.1f} min")
    if failures:
        print(f"[bench] failed: {', '.join(failures)} (the report says why)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
