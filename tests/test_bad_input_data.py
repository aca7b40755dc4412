"""Bad study files and datasets (issue 16): one line on stderr naming the file, exit 2, nothing written.

Alias bombs and absurd widths run in a subprocess under a small address-space limit, so code that
expands or allocates them fails there (MemoryError, or the timeout), never on the machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas.cli import main
from search_spaces import ArchSpec, SpecError
from tests.conftest import REPO
from trainers import DataError, FilesConfig, load_files
from trainers._sources import index_msd

#: Enough for ``nas`` to import torch and start; far less than an expanded alias bomb.
ADDRESS_SPACE = 2 * 2**30


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def limited_nas(*args: str, cwd: Path, timeout: float = 90) -> tuple[subprocess.CompletedProcess[str], float]:
    """``nas ARGS`` in a fresh process whose address space is capped at ``ADDRESS_SPACE``."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    env["PYTHONPATH"] = str(REPO)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "nas", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap,
    )
    return proc, time.monotonic() - start


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1, err
    return lines[0]


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def folder(root: Path, mask: np.ndarray, n: int = 4, size: tuple[int, int] = (32, 32)) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(root / "images" / f"case{i}.png", rng.integers(0, 255, (*size, 3)))
        write_png(root / "masks" / f"case{i}.png", mask)
    return root


def square(size: tuple[int, int] = (32, 32), value: int | tuple[int, ...] = 255) -> np.ndarray:
    mask = np.zeros((*size, 3) if isinstance(value, tuple) else size)
    mask[4:12, 4:12] = value
    return mask


def arch_json(tmp: Path, **fields: object) -> Path:
    path = tmp / "arch.json"
    path.write_text(ArchSpec(**fields).to_json())  # type: ignore[arg-type]
    return path


# ---------------------------------------------------------------- study files (YAML)


def alias_bomb(levels: int = 9) -> str:
    """~500 bytes that expand to 9**(levels + 1) strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines)


def test_an_alias_bomb_in_a_study_file_is_refused_fast(tmp_path: Path) -> None:
    text = "train:\n" + "\n".join("  " + line for line in alias_bomb().splitlines()) + "\n"
    (tmp_path / "bomb.yaml").write_text(text)
    assert len(text) < 600
    before = snapshot(tmp_path)
    proc, seconds = limited_nas("search", "bomb.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_line(proc.stderr)
    assert line.startswith("nas: error: bomb.yaml: ") and "aliases" in line and "100000" in line
    assert snapshot(tmp_path) == before
    assert seconds < 60


def test_an_alias_bomb_in_a_set_value_is_refused_fast(tmp_path: Path) -> None:
    flow = "{" + ", ".join(alias_bomb().splitlines()) + "}"
    proc, seconds = limited_nas("search", "--set", f"train={flow}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_line(proc.stderr)
    assert line.startswith("nas: error: --set 'train=") and "aliases" in line
    assert list(tmp_path.iterdir()) == [] and seconds < 60


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"name: one\nconcurrency: 2\nname: two\n",
            "study.yaml: line 3: key 'name' is given twice (first on line 1)",
        ),
        (b"sampler: {name: tpe, seed: 1, name: random}\n", "study.yaml: line 1: key 'name' is given twice"),
        ("name: café\n".encode("latin-1"), "study.yaml: not UTF-8 text (byte 0xe9 at offset 9)"),
        (b"train: &a [*a]\n", "study.yaml: an alias (*name) refers to a value that contains it"),
    ],
)
def test_bad_yaml_is_one_line_naming_the_file(
    content: bytes, expected: str, in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp_cwd / "study.yaml").write_bytes(content)
    code, err = cli(["search", "study.yaml"], capsys)
    assert code == 2 and expected in one_line(err), err
    assert [p.name for p in in_tmp_cwd.iterdir()] == ["study.yaml"]


def test_a_merge_may_override_the_keys_it_brings_in(tmp_path: Path) -> None:
    from nas._studyfile import load_yaml

    text = "base: &b {name: tpe, seed: 1}\nsampler: {<<: *b, name: random}\n"
    assert load_yaml(text, "x.yaml")["sampler"] == {"name": "random", "seed": 1}


# ---------------------------------------------------------------- datasets


def test_a_symlink_loop_in_a_dataset_is_refused_naming_it(in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = folder(in_tmp_cwd / "lesions", square())
    (root / "images" / "case9.png").symlink_to("case9.png")
    (root / "masks" / "case9.png").symlink_to("case9.png")
    with pytest.raises(DataError, match=r"images/case9.png is a symbolic link that cannot be followed"):
        load_files(FilesConfig(kind="folder2d", path=str(root)))
    (in_tmp_cwd / "d.json").write_text('{"kind": "folder2d", "path": "lesions"}')
    arch_json(in_tmp_cwd, in_channels=3)
    before = snapshot(in_tmp_cwd)
    code, err = cli(["train", "arch.json", "--data", "d.json", "--epochs", "1"], capsys)
    assert code == 2 and "case9.png is a symbolic link" in one_line(err)
    assert snapshot(in_tmp_cwd) == before


def test_images_too_small_for_the_depth_are_one_line_before_training(
    in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1×1 images with no padding reached the network and raised a ValueError traceback."""
    root = folder(in_tmp_cwd / "dots", np.full((1, 1), 255), n=6, size=(1, 1))
    (in_tmp_cwd / "d.json").write_text(json.dumps({"kind": "folder2d", "path": str(root), "pad_multiple": 1}))
    arch_json(in_tmp_cwd, in_channels=3)
    before = snapshot(in_tmp_cwd)
    code, err = cli(["train", "arch.json", "--data", "d.json", "--epochs", "1"], capsys)
    assert code == 2 and "the network input is 1×1, not divisible by 8" in one_line(err)
    assert snapshot(in_tmp_cwd) == before


def msd_task(root: Path, entry: dict[str, str]) -> Path:
    import nibabel as nib

    for part in ("imagesTr", "labelsTr"):
        (root / part).mkdir(parents=True)
    rng = np.random.default_rng(0)
    training = []
    for i in range(3):
        nib.save(
            nib.Nifti1Image(rng.random((16, 16, 16)).astype(np.float32), np.eye(4)), root / f"imagesTr/c{i}.nii.gz"
        )
        nib.save(nib.Nifti1Image(np.zeros((16, 16, 16), np.uint8), np.eye(4)), root / f"labelsTr/c{i}.nii.gz")
        training.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
    meta = {"labels": {"0": "background", "1": "structure"}, "training": [*training, entry]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.mark.parametrize("outside", ["../secret.nii.gz", "imagesTr/../../secret.nii.gz", "ABSOLUTE"])
def test_dataset_json_paths_outside_the_folder_are_refused_before_opening(
    outside: str, in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel as nib

    secret = in_tmp_cwd / "secret.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 16), np.float32), np.eye(4)), secret)
    outside = str(secret) if outside == "ABSOLUTE" else outside
    task = msd_task(in_tmp_cwd / "task", {"image": outside, "label": "./labelsTr/c0.nii.gz"})
    with pytest.raises(DataError, match=r"image '.*secret.nii.gz' is outside the dataset folder"):
        index_msd(task)
    opened: list[str] = []
    real_load = nib.load

    def spying_load(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(nib, "load", spying_load)
    (in_tmp_cwd / "d.json").write_text('{"kind": "msd", "path": "task"}')
    arch_json(in_tmp_cwd, spatial_dims=3)
    code, err = cli(["train", "arch.json", "--data", "d.json", "--epochs", "1"], capsys)
    assert code == 2 and "is outside the dataset folder" in one_line(err)
    assert not any("secret" in path for path in opened)
    assert not (in_tmp_cwd / "trained").exists()


def test_a_symlinked_file_inside_the_folder_may_point_elsewhere(tmp_path: Path) -> None:
    import nibabel as nib

    elsewhere = tmp_path / "store" / "x.nii.gz"
    elsewhere.parent.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 16), np.float32), np.eye(4)), elsewhere)
    task = msd_task(tmp_path / "task", {"image": "./imagesTr/linked.nii.gz", "label": "./labelsTr/c0.nii.gz"})
    (task / "imagesTr" / "linked.nii.gz").symlink_to(elsewhere)
    assert len(index_msd(task)) == 4


def test_nnunet_channels_of_different_sizes_are_one_line(in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = in_tmp_cwd / "nn"
    rng = np.random.default_rng(0)
    for i in range(4):
        write_png(root / "imagesTr" / f"c{i}_0000.png", rng.integers(0, 255, (32, 32)))
        write_png(root / "imagesTr" / f"c{i}_0001.png", rng.integers(0, 255, (32, 48) if i == 2 else (32, 32)))
        write_png(root / "labelsTr" / f"c{i}.png", square(value=1))
    meta = {"channel_names": {"0": "a", "1": "b"}, "labels": {"background": 0, "x": 1}, "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(meta))
    (in_tmp_cwd / "d.json").write_text('{"kind": "nnunet", "path": "nn"}')
    arch_json(in_tmp_cwd, in_channels=2)
    before = snapshot(in_tmp_cwd)
    code, err = cli(["train", "arch.json", "--data", "d.json", "--epochs", "1"], capsys)
    assert code == 2, err
    assert "case c2 has channel files of different sizes: c2_0000.png 32×32, c2_0001.png 32×48" in one_line(err)
    assert snapshot(in_tmp_cwd) == before


def test_nnunet_file_ending_cannot_name_another_folder(tmp_path: Path) -> None:
    from trainers._sources import index_nnunet

    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    meta = {"channel_names": {"0": "a"}, "labels": {"background": 0, "x": 1}, "file_ending": "/../../etc/passwd"}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"file_ending '/\.\./\.\./etc/passwd' is not valid"):
        index_nnunet(tmp_path)


def test_pad_multiple_zero_is_refused() -> None:
    with pytest.raises(DataError, match=r"data.pad_multiple: 0 is not valid; expected a positive integer"):
        FilesConfig(kind="folder2d", path=".", pad_multiple=0)


def test_absurd_widths_are_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"channels: 131072 is wider than 4096"):
        ArchSpec(channels=(65536, 131072))
    ArchSpec(channels=(4096, 4096))  # the bound itself is accepted
    spec = json.loads(ArchSpec().to_json())
    (tmp_path / "arch.json").write_text(json.dumps({**spec, "channels": [65536, 131072]}))
    proc, seconds = limited_nas("train", "arch.json", "--epochs", "1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "channels: 131072 is wider than 4096" in one_line(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.json"] and seconds < 60


# ---------------------------------------------------------------- masks


def test_a_red_mask_is_read_as_drawn(tmp_path: Path) -> None:
    data = load_files(FilesConfig(kind="folder2d", path=str(folder(tmp_path, square(value=(255, 0, 0))))))
    assert all(int(label.sum()) == 64 for label in data.train_labels)  # the 8×8 red square, nothing else


def test_a_colour_mask_with_several_classes_is_refused(tmp_path: Path) -> None:
    root = folder(tmp_path, square(value=(0, 200, 0)))
    with pytest.raises(DataError, match=r"case\d.png is a colour mask .* but data.classes is 3"):
        load_files(FilesConfig(kind="folder2d", path=str(root), classes=3))


@pytest.mark.parametrize(("value", "said"), [(128, "foreground only"), (0, "background only")])
def test_masks_that_are_all_one_class_get_a_warning_naming_them(
    value: int, said: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = folder(tmp_path, np.full((32, 32), value))
    with caplog.at_level(logging.WARNING, logger="trainers._files"):
        load_files(FilesConfig(kind="folder2d", path=str(root)))
    warned = [r.getMessage() for r in caplog.records if r.name == "trainers._files"]
    assert len(warned) == 1 and f"all 4 masks hold {said}" in warned[0] and "case0.png" in warned[0]


def test_some_empty_masks_are_normal_and_get_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = folder(tmp_path, square())
    write_png(root / "masks" / "case1.png", np.zeros((32, 32)))
    with caplog.at_level(logging.WARNING, logger="trainers._files"):
        load_files(FilesConfig(kind="folder2d", path=str(root)))
    assert not [r for r in caplog.records if r.name == "trainers._files"]
