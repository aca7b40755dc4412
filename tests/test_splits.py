"""Splits a medical researcher can defend: by patient or sequence, with a separate test set."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from nas._config import data_config
from tests.test_sources import write_png
from trainers import DataError, FilesConfig, load_files, split_cases


def frames(root: Path, sequences: int = 6, per_sequence: int = 4, prefix: str = "seq") -> Path:
    """Video frames named ``seq{s}_f{f}``: neighbouring frames of one sequence look alike."""
    rng = np.random.default_rng(0)
    for s in range(sequences):
        for f in range(per_sequence):
            write_png(root / "images" / f"{prefix}{s}_f{f}.png", rng.integers(0, 255, (32, 32)))
            mask = np.zeros((32, 32))
            mask[4:12, 4 + f : 12 + f] = 255
            write_png(root / "masks" / f"{prefix}{s}_f{f}.png", mask)
    return root


def sequences_of(ids: list[str]) -> set[str]:
    return {i.removeprefix("test/").split("_")[0] for i in ids}


def old_split(ids: list[str], config: FilesConfig) -> dict[str, list[str]]:
    """The case-level split as it was before grouping existed (a reference written out on its own)."""
    order = sorted(ids)
    random.Random(config.seed).shuffle(order)
    n_test = round(len(order) * config.test_fraction)
    test, rest = order[:n_test], order[n_test:]
    n_val = max(1, round(len(rest) * config.val_fraction))
    return {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": sorted(test)}


def test_without_groups_the_split_is_the_case_level_one_it_always_was() -> None:
    ids = [f"case{i:03d}" for i in range(37)]
    for seed in range(5):
        config = FilesConfig(kind="folder2d", path=".", seed=seed, val_fraction=0.2, test_fraction=0.1)
        assert split_cases(ids, config) == old_split(ids, config)


def test_a_group_pattern_keeps_every_sequence_in_one_part(tmp_path: Path) -> None:
    root = frames(tmp_path / "video")
    config = FilesConfig(kind="folder2d", path=str(root), group=r"^(seq\d+)_", val_fraction=0.3, test_fraction=0.2)
    data = load_files(config)
    assert data.split is not None and data.split_groups is not None
    parts = {part: sequences_of(list(data.split[part])) for part in ("train", "val", "test")}
    assert all(parts.values())
    assert (
        not (parts["train"] & parts["val"])
        and not (parts["train"] & parts["test"])
        and not (parts["val"] & parts["test"])
    )
    assert {p: set(g) for p, g in data.split_groups.items()} == parts
    assert sum(len(v) for v in data.split.values()) == 24  # every frame in exactly one part
    ungrouped = load_files(FilesConfig(kind="folder2d", path=str(root), val_fraction=0.3, test_fraction=0.2))
    assert ungrouped.split is not None
    shared = sequences_of(list(ungrouped.split["train"])) & sequences_of(list(ungrouped.split["val"]))
    assert shared  # the comparison can fail: a case-level split puts neighbouring frames on both sides


def test_groups_from_a_csv_file_and_k_folds_over_groups(tmp_path: Path) -> None:
    ids = [f"scan{i:02d}" for i in range(20)]
    csv = tmp_path / "patients.csv"
    csv.write_text("case,group\n" + "".join(f"scan{i:02d},P{i // 3}\n" for i in range(20)))
    groups = {f"scan{i:02d}": f"P{i // 3}" for i in range(20)}
    seen_val: list[str] = []
    for fold in range(3):
        config = FilesConfig(kind="msd", path=".", groups_file=str(csv), folds=3, fold=fold)
        split = split_cases(ids, config, groups)
        train, val = {groups[c] for c in split["train"]}, {groups[c] for c in split["val"]}
        assert train and val and not train & val
        seen_val += sorted(val)
    assert sorted(seen_val) == sorted(set(groups.values()))  # each patient validates in exactly one fold


def test_bad_groupings_are_one_line_naming_the_field(tmp_path: Path) -> None:
    root = frames(tmp_path / "video", sequences=3)
    with pytest.raises(DataError, match=r"data.group: '\^\(clip\\\\d\+\)' matches no part of 12 case ids: seq0_f0"):
        load_files(FilesConfig(kind="folder2d", path=str(root), group=r"^(clip\d+)"))
    with pytest.raises(DataError, match=r"data.group: '\(' is not a valid regular expression"):
        FilesConfig(kind="folder2d", path=str(root), group="(")
    csv = tmp_path / "g.csv"
    csv.write_text("case,group\nseq0_f0,A\n")
    with pytest.raises(DataError, match=r"data.groups_file: .*g.csv has no row for 11 cases: seq0_f1"):
        load_files(FilesConfig(kind="folder2d", path=str(root), groups_file=str(csv)))
    csv.write_text("name,patient\n")
    with pytest.raises(DataError, match=r"header is 'case,group'"):
        load_files(FilesConfig(kind="folder2d", path=str(root), groups_file=str(csv)))
    with pytest.raises(DataError, match=r"12 cases in 1 groups leave 0 for training"):
        load_files(FilesConfig(kind="folder2d", path=str(root), group=r"^seq"))
    with pytest.raises(DataError, match="not both"):
        FilesConfig(kind="folder2d", path=".", group="x", groups_file="y")


def test_a_separate_test_folder_is_the_test_split(tmp_path: Path) -> None:
    root = frames(tmp_path / "search", sequences=4)
    held = frames(tmp_path / "held-out", sequences=2, prefix="other")
    data = load_files(FilesConfig(kind="folder2d", path=str(root), test_path=str(held), group=r"^(\w+?\d+)_"))
    assert data.split is not None and data.split_groups is not None
    assert len(data.test_images) == 8 and all(c.startswith("test/other") for c in data.split["test"])
    assert len(data.split["train"]) + len(data.split["val"]) == 16
    assert sorted(data.split_groups["test"]) == ["other0", "other1"]
    with pytest.raises(DataError, match=r"data.test_fraction: 0.2 with a separate test set"):
        FilesConfig(kind="folder2d", path=str(root), test_path=str(held), test_fraction=0.2)
    with pytest.raises(DataError, match="DRIVE keeps its own test set"):
        FilesConfig(kind="drive", path=str(root), test_path=str(held))
    same = frames(tmp_path / "leaky", sequences=1)  # seq0 is also among the search's sequences
    with pytest.raises(DataError, match=r"data.test_path: 1 groups have cases both in the test set .*: seq0"):
        load_files(FilesConfig(kind="folder2d", path=str(root), test_path=str(same), group=r"^(seq\d+)_"))


def test_a_test_list_holds_cases_out_and_refuses_a_split_sequence(tmp_path: Path) -> None:
    root = frames(tmp_path / "video", sequences=5)
    listed = tmp_path / "test.txt"
    listed.write_text("# the last sequence\n" + "".join(f"seq4_f{f}\n" for f in range(4)))
    data = load_files(FilesConfig(kind="folder2d", path=str(root), test_list=str(listed), group=r"^(seq\d+)_"))
    assert data.split is not None
    assert sorted(data.split["test"]) == [f"test/seq4_f{f}" for f in range(4)]
    assert "seq4" not in sequences_of([*data.split["train"], *data.split["val"]])
    listed.write_text("seq4_f0\nseq4_f1\n")  # seq4's other frames would train: leakage
    with pytest.raises(DataError, match=r"data.test_list: 1 groups have cases both in the test set .*: seq4"):
        load_files(FilesConfig(kind="folder2d", path=str(root), test_list=str(listed), group=r"^(seq\d+)_"))
    listed.write_text("seq9_f0\n")
    with pytest.raises(DataError, match=r"data.test_list: 1 cases of .*test.txt are not in .*: seq9_f0"):
        load_files(FilesConfig(kind="folder2d", path=str(root), test_list=str(listed)))


def test_relative_paths_of_a_data_file_are_taken_from_its_folder(tmp_path: Path) -> None:
    frames(tmp_path / "video", sequences=3)
    (tmp_path / "groups.csv").write_text("case,group\n")
    fields = {"kind": "folder2d", "path": "video", "groups_file": "groups.csv", "test_path": "held"}
    (tmp_path / "data.json").write_text(json.dumps(fields))
    config = data_config(str(tmp_path / "data.json"))
    assert isinstance(config, FilesConfig)
    assert config.groups_file == str(tmp_path / "groups.csv") and config.test_path == str(tmp_path / "held")
