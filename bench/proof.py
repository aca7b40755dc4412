"""Proof on real data: do the search's answers hold up on the shared datasets? (long: about an hour)

Everything runs through the ``nas`` command as a user runs it, on the real copies in
``../shared/data`` (``NAS_SHARED_DATA`` overrides the folder); a dataset that is missing is reported
as not measured, never replaced by another.

- **DRIVE, the joint-attention paper's ablation.** ``nas search ja-ablation`` on DRIVE (green
  channel, 64² patches; the 20 test images are the test split): DenseUNet with no attention, PWA,
  SA and the nine joint-attention variants at every skip connection, three seeds each. For each
  variant its test Dice inside the field of view (the whole 565×584 images, sliding window; never
  used to select anything), mean ± sd over the seeds, beside the paper's figures, and each variant's
  difference from the bare DenseUNet with Welch's 95% interval.
- **Kvasir-SEG, search → confirm → retrain against the no-attention twin.** ``nas search`` on
  Kvasir-SEG resized to 128² (the 200-image hold-out is the test split), with the default confirm
  stage; the architecture chosen is the confirmed front member with the highest mean validation
  Dice. It and its no-attention twin (same backbone and widths) are exported (``nas export``) and
  retrained the same way (``nas retrain``, the study's recipe, the same epochs) with three seeds;
  their test Dice are compared with Welch's 95% interval.

The figures are written down whatever they show: a difference whose interval holds 0 is a tie.
With ``NAS_BENCH_PROOF_DIR=folder`` the studies and exports stay in that folder, and a second run
resumes the searches where the first stopped (``nas search`` on an existing study resumes it).

    .venv/bin/python bench/proof.py            # both parts (make bench runs it too)
    .venv/bin/python bench/proof.py --quick    # a smoke run: tiny budgets, a few images
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import _report  # noqa: E402
import optuna  # noqa: E402

from studies import CONFIRM_STAGE, TrialRecord, open_storage, trial_records, verdict, welch_interval  # noqa: E402

SHARED_DATA = Path(os.environ.get("NAS_SHARED_DATA", REPO.parent / "shared" / "data"))
SEEDS = 3

#: The joint-attention paper's Dice (ISIC-2017 test set; DRIVE for JA only), for the table.
PAPER_ISIC = {"none": 0.8363, "pwa": 0.8396, "sa": 0.8408, "joint": 0.8500}
PAPER_DRIVE_JA = 0.8164


@dataclass(frozen=True)
class Budget:
    drive_epochs: int
    drive_patches: int
    drive_limit: int | None  # images of each split (None: all)
    drive_trials: int | None  # the first trials of the grid (None: all 36)
    kvasir_trials: int
    kvasir_epochs: int
    kvasir_retrain_epochs: int
    kvasir_limit: int | None
    confirm_members: int
    kvasir_seeds: int  # the confirm stage's seeds and the retrains of each architecture (DRIVE's grid has 3)


FULL = Budget(
    drive_epochs=6,
    drive_patches=16,
    drive_limit=None,
    drive_trials=None,
    kvasir_trials=10,
    kvasir_epochs=5,
    kvasir_retrain_epochs=8,
    kvasir_limit=None,
    confirm_members=2,
    kvasir_seeds=SEEDS,
)
QUICK = Budget(
    drive_epochs=1,
    drive_patches=2,
    drive_limit=4,
    drive_trials=4,
    kvasir_trials=3,
    kvasir_epochs=1,
    kvasir_retrain_epochs=1,
    kvasir_limit=60,
    confirm_members=1,
    kvasir_seeds=2,  # the fewest a Welch interval takes
)


def nas(*args: str, cwd: Path) -> str:
    """Run the installed ``nas`` command; its stdout, or a RuntimeError with its stderr's tail."""
    script = Path(sys.executable).parent / "nas"
    done = subprocess.run([str(script), *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`nas {' '.join(args)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else None
    return f"{statistics.mean(values):.4f}" + (f" ± {sd:.4f}" if sd is not None else "") + f" (n {len(values)})"


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """mean(a) − mean(b) and Welch's 95% interval of it (the verdict's: ``studies.welch_interval``)."""
    return statistics.mean(a) - statistics.mean(b), welch_interval(a, b)


def diff_text(diff: float, interval: tuple[float, float] | None) -> str:
    if interval is None:
        return f"{diff:+.4f}"
    lo, hi = interval
    word = "better" if lo > 0 else "worse" if hi < 0 else "tied"
    return f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}] {word}"


def test_dice(record: TrialRecord) -> float | None:
    metrics = record.test_metrics or {}
    value = dict(metrics.get("mean") or {}).get("dice")
    return None if value is None else float(value)


def records_of(db: Path, study: str) -> list[TrialRecord]:
    storage = open_storage(f"sqlite:///{db}", create=False)
    return trial_records(optuna.load_study(study_name=study, storage=storage))


def _block(record: TrialRecord) -> str:
    """none / pwa / sa, or joint for the preset's compositions of PWA and SA (block ``compose``)."""
    block = str(dict((record.spec or {}).get("attention") or {}).get("block", "none"))
    return "joint" if block == "compose" else block


# ---------------------------------------------------------------- DRIVE


def drive(budget: Budget, tmp: Path) -> tuple[list[str], list[_report.Headline]]:
    root = SHARED_DATA / "drive"
    if not root.is_dir():
        return [f"{root} is not present: the DRIVE ablation was not measured."], []
    data = {
        "kind": "drive",
        "path": str(root),
        "channels": "green",
        "patch": 64,
        "patches_per_image": budget.drive_patches,
    }
    if budget.drive_limit:
        data["limit"] = budget.drive_limit
    (tmp / "drive.json").write_text(json.dumps(data))
    db = tmp / "drive.db"
    args = ["search", "ja-ablation", "--data", "drive.json", "--study", "proof-drive"]
    args += ["--storage", f"sqlite:///{db}", "--epochs", str(budget.drive_epochs)]
    if budget.drive_trials:
        args += ["--trials", str(budget.drive_trials)]
    start = time.perf_counter()
    nas(*args, cwd=tmp)
    seconds = time.perf_counter() - start
    records = [r for r in records_of(db, "proof-drive") if r.state == "COMPLETE" and r.reused_from is None]
    groups: dict[str, list[TrialRecord]] = {}
    for r in records:
        groups.setdefault(str(r.spec_hash), []).append(r)
    rows = []
    for members in groups.values():
        tests = [d for r in members if (d := test_dice(r)) is not None]
        vals = [float(r.best_dice) for r in members if r.best_dice is not None]
        rows.append((members[0], tests, vals))
    base = next((row for row in rows if _block(row[0]) == "none"), None)
    rows.sort(key=lambda row: -statistics.mean(row[1]) if row[1] else 0.0)
    lines = [
        f"`nas {' '.join(args)}` with `drive.json` = `{json.dumps({**data, 'path': 'DRIVE'})}`: "
        f"{len(groups)} architectures × {SEEDS} seeds, {budget.drive_epochs} epochs each, "
        f"{len(records)} trials in {seconds / 60:.1f} min on 2 cores (2 trials at a time). Test Dice: the vessel "
        "class inside the field of view on the test images (whole images, sliding window), of each trial's best "
        "weights by validation Dice; never used to select. Differences: Welch's 95% interval over the seeds.",
        "",
        "| variant | GFLOPs | validation Dice | test Dice in the FOV | − DenseUNet (test) | paper, ISIC-2017 |",
        "|---|---|---|---|---|---|",
    ]
    for first, tests, vals in rows:
        block = _block(first)
        paper = PAPER_ISIC.get(block, "")
        if block == "joint":
            paper = f"{PAPER_ISIC['joint']} (its JA)"
        versus = ""
        if base is not None and first is not base[0] and tests and base[1]:
            versus = diff_text(*welch(tests, base[1]))
        gflops = (first.flops or 0) / 1e9
        lines.append(f"| {first.label} | {gflops:.2f} | {mean_sd(vals)} | {mean_sd(tests)} | {versus} | {paper} |")
    headlines: list[_report.Headline] = []
    if base is not None and base[1]:
        joints = [row for row in rows if _block(row[0]) == "joint" and row[1]]
        best = max(joints, key=lambda row: statistics.mean(row[1]), default=None)
        by_block = {_block(row[0]): row for row in rows if _block(row[0]) in ("pwa", "sa")}
        order = [
            ("DenseUNet", base[1]),
            *((name.upper(), by_block[name][1]) for name in ("pwa", "sa") if name in by_block),
        ]
        if best is not None:
            order.append((f"best JA ({best[0].label.split(' ')[0]})", best[1]))
        measured = " ; ".join(f"{name} {statistics.mean(v):.4f}" for name, v in order)
        lines += [
            "",
            f"Measured means: {measured}. The paper's ordering on ISIC-2017: DenseUNet 0.8363 < +PWA 0.8396 ≈ "
            f"+SA 0.8408 < +JA 0.8500; on DRIVE its JA reached {PAPER_DRIVE_JA} Dice (trained to convergence on "
            "a GPU, with CLAHE; these runs train a few minutes each on a CPU).",
        ]
        if best is not None:
            diff, interval = welch(best[1], base[1])
            headlines.append(
                _report.Headline(
                    area="Proof on real data",
                    what=f"DRIVE ja-ablation, {SEEDS} seeds, {budget.drive_epochs} epochs: best joint variant's test "
                    "Dice in the FOV − bare DenseUNet's (Welch 95%)",
                    figure=diff_text(diff, interval),
                    reference=f"DenseUNet {statistics.mean(base[1]):.4f}",
                )
            )
    return lines, headlines


# ---------------------------------------------------------------- Kvasir-SEG

KVASIR_STUDY = """\
# Kvasir-SEG proof: the demo space (no attention, PWA, SA, the nine joint variants at the skips).
space:
  blocks: [none, pwa, sa, joint]
  options:
    sa.similarity: [dot]
    joint.similarity: [dot]
  placements: [skip]
  backbones: [unet]
  depths: [3, 4]
  base_widths: [8, 16]
sampler:
  name: nsga2
  seed: 0
confirm:
  members: {members}
  seeds: {seeds}
  min_trials: {min_trials}
concurrency: 2
"""


def kvasir(budget: Budget, tmp: Path) -> tuple[list[str], list[_report.Headline]]:
    root = SHARED_DATA / "kvasir_seg"
    if not root.is_dir():
        return [f"{root} is not present: the Kvasir-SEG comparison was not measured."], []
    data: dict[str, object] = {
        "kind": "folder2d",
        "path": str(root),
        "channels": "rgb",
        "size": 128,
        "val_fraction": 0.1,
        "test_fraction": 0.2,
    }
    if budget.kvasir_limit:
        data["limit"] = budget.kvasir_limit
    (tmp / "kvasir.json").write_text(json.dumps(data))
    (tmp / "kvasir.yaml").write_text(
        KVASIR_STUDY.format(members=budget.confirm_members, seeds=budget.kvasir_seeds, min_trials=budget.kvasir_trials)
    )
    db = tmp / "kvasir.db"
    storage = f"sqlite:///{db}"
    args = ["search", "kvasir.yaml", "--data", "kvasir.json", "--study", "proof-kvasir", "--storage", storage]
    args += ["--trials", str(budget.kvasir_trials), "--epochs", str(budget.kvasir_epochs)]
    start = time.perf_counter()
    nas(*args, cwd=tmp)
    search_s = time.perf_counter() - start
    records = records_of(db, "proof-kvasir")
    result = verdict(records)
    confirmed = [a for a in result.front if a.stage == CONFIRM_STAGE] or list(result.front)
    chosen = max(confirmed, key=lambda a: a.mean)
    twin = next((c.twin for c in result.twins if c.member.spec_hash == chosen.spec_hash), None)
    lines = [
        f"`nas {' '.join(args)}` with `kvasir.json` = `{json.dumps({**data, 'path': 'kvasir_seg'})}` and the "
        f"demo space (`kvasir.yaml`: no attention, PWA, SA and the nine joint variants at the skips of a U-Net of "
        f"depth 3 or 4, base width 8 or 16), confirm stage {budget.confirm_members} members × "
        f"{budget.kvasir_seeds} seeds: "
        f"{len(records)} trials in {search_s / 60:.1f} min. Verdict stage: {result.stage}; fidelity (Spearman ρ "
        f"between search and confirm Dice): "
        + (f"{result.fidelity:.2f} over {result.fidelity_pairs} architectures" if result.fidelity is not None else "—")
        + ".",
        "",
        "| front member | GFLOPs | validation Dice | note |",
        "|---|---|---|---|",
    ]
    for member in result.front:
        mark = " **(chosen)**" if member is chosen else ""
        lines.append(f"| {member.label}{mark} | {(member.gflops or 0):.3f} | {member.text()} | {result.note(member)} |")
    if twin is None:
        if not chosen.has_attention:
            lines += ["", "The chosen architecture has no attention: the search found nothing for attention to buy."]
        else:
            lines += ["", "The chosen architecture's no-attention twin has no confirmed result; nothing compared."]
        return lines, []
    retrained: dict[str, list[float]] = {}
    retrain_s = 0.0
    kept = {r.number for r in records if r.weights_path and Path(r.weights_path).is_file()}
    for arch in (chosen, twin):
        # nas export needs a trial whose weights the keep policy kept (it keeps each front member's best)
        trial = next((t for t in arch.trials if t in kept), None)
        if trial is None:
            raise RuntimeError(f"no trial of {arch.label} kept its weights (trials {arch.trials}); nothing to export")
        export = tmp / f"export-{trial}"
        nas("export", "proof-kvasir", "--trial", str(trial), "--storage", storage, "-o", str(export),
            "--overwrite", cwd=tmp)  # fmt: skip
        for seed in range(budget.kvasir_seeds):
            out = tmp / f"retrained-{trial}-{seed}"
            if not (out / "metrics.json").exists():  # a resumed run keeps what it retrained
                started = time.perf_counter()
                nas("retrain", str(export), "-o", str(out), "--epochs", str(budget.kvasir_retrain_epochs),
                    "--seed", str(seed), cwd=tmp)  # fmt: skip
                retrain_s += time.perf_counter() - started
            summary = json.loads((out / "metrics.json").read_text())
            retrained.setdefault(arch.spec_hash, []).append(float(summary["test"]["mean"]["dice"]))
    a, b = retrained[chosen.spec_hash], retrained[twin.spec_hash]
    diff, interval = welch(a, b)
    lines += [
        "",
        f"Both retrained by `nas retrain EXPORT --epochs {budget.kvasir_retrain_epochs} --seed S` "
        f"(S = 0–{budget.kvasir_seeds - 1}; "
        f"the study's recipe), one at a time, {retrain_s / 60:.1f} min in all; test Dice on the 200-image "
        "hold-out (never used to select).",
        "",
        "| architecture | GFLOPs | confirm validation Dice | retrained test Dice |",
        "|---|---|---|---|",
        f"| {chosen.label} (chosen) | {(chosen.gflops or 0):.3f} | {chosen.text()} | {mean_sd(a)} |",
        f"| {twin.label} (its no-attention twin) | {(twin.gflops or 0):.3f} | {twin.text()} | {mean_sd(b)} |",
        "",
        f"Chosen − twin, test Dice: {diff_text(diff, interval)} (Welch's 95% interval).",
    ]
    headline = _report.Headline(
        area="Proof on real data",
        what="Kvasir-SEG 128²: chosen architecture's retrained test Dice − its no-attention twin's "
        f"({budget.kvasir_seeds} seeds, "
        f"{budget.kvasir_retrain_epochs} epochs each, Welch 95%)",
        figure=diff_text(diff, interval),
        reference=f"twin {statistics.mean(b):.4f}",
    )
    return lines, [headline]


def measure(quick: bool) -> _report.Section:
    budget = QUICK if quick else FULL
    lines: list[str] = []
    headlines: list[_report.Headline] = []
    keep = os.environ.get("NAS_BENCH_PROOF_DIR")  # a folder to keep the studies in: a rerun resumes them
    with tempfile.TemporaryDirectory(prefix="nas-bench-proof-") as name:
        tmp = Path(keep) if keep else Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        for title, part in (
            ("DRIVE: the joint-attention ablation", drive),
            ("Kvasir-SEG: search → confirm → retrain", kvasir),
        ):
            body, heads = part(budget, tmp)
            lines += [f"### {title}", "", *body, ""]
            headlines += heads
    return _report.Section("Proof on real data", "\n".join(lines).rstrip(), headlines)


def main(argv: Sequence[str] | None = None) -> int:
    return _report.standalone(measure, "proof.py", argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
