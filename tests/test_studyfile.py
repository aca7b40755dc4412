"""Study config files: presets, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas import ConfigError, parse_override, preset_names, search_config
from nas.cli import main
from search_spaces import count_architectures
from trainers import FilesConfig, SyntheticConfig


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_presets_the_issue_names_ship_and_validate() -> None:
    assert {"demo", "ja-ablation", "attention-zoo", "volumetric"} <= set(preset_names())
    demo = search_config("demo")
    assert (demo.sampler, demo.trials, demo.train.epochs, demo.concurrency) == ("nsga2", 20, 10, 2)
    ablation = search_config("ja-ablation")
    # none, pwa, sa and the nine joint variants at every DenseUNet skip, three seeds each
    assert ablation.sampler == "grid" and count_architectures(ablation.space) == 12
    assert ablation.replicates == 3 and ablation.trials == 36
    assert ablation.space.backbones == ("denseunet",)
    volumetric = search_config("volumetric")
    assert isinstance(volumetric.data, SyntheticConfig) and volumetric.data.spatial_dims == 3
    assert volumetric.space.placements == ("bottleneck",) and "pam" in volumetric.space.blocks
    assert volumetric.space.extra_placements == ("skip",) and "ag" in volumetric.space.extra_blocks
    zoo = search_config("attention-zoo")
    assert zoo.grace_period is not None and zoo.constraints.max_gflops is not None


def test_a_file_sets_every_section(tmp_path: Path) -> None:
    (tmp_path / "drive").mkdir()
    source = write(
        tmp_path,
        """
name: my-study
storage: sqlite:///my.db
data: {kind: folder2d, path: drive, size: 64}
space: {blocks: [none, se], depths: [3], base_widths: [8]}
constraints: {max_gflops: 1.5, max_params: 2.0e6, max_memory_mb: 900}
sampler: {name: tpe, seed: 7}
budget: {trials: 12, wall_time: 90m}
fidelity: {epochs: 6, grace_period: 2, reduction_factor: 2}
resources: {cpus: 2, gpus: 0.25}
concurrency: 4
train: {loss: focal, lr: 0.001}
baselines: false
weights: {keep: all}
""",
    )
    config = search_config(source)
    assert (config.study, config.storage, config.trials, config.concurrency) == ("my-study", "sqlite:///my.db", 12, 4)
    assert isinstance(config.data, FilesConfig) and Path(config.data.path) == (tmp_path / "drive").resolve()
    assert config.constraints.max_params == 2.0e6 and config.constraints.max_memory_mb == 900
    assert (config.sampler, config.seed, config.train.seed) == ("tpe", 7, 7)
    assert config.wall_time_s == 5400
    assert (config.train.epochs, config.grace_period, config.reduction_factor) == (6, 2, 2)
    assert (config.cpus_per_trial, config.gpus_per_trial) == (2, 0.25)
    assert (config.train.loss, config.train.lr, config.baselines, config.keep_top) == ("focal", 0.001, False, None)


def test_overrides_replace_keys_and_are_checked_like_the_file() -> None:
    config = search_config("demo", [("sampler.name", "random"), parse_override("fidelity.epochs=3")])
    assert config.sampler == "random" and config.train.epochs == 3
    assert parse_override("constraints.max_gflops=null") == ("constraints.max_gflops", None)
    with pytest.raises(ConfigError, match=r"sampler\.name: Input should be 'nsga2', 'tpe', 'random' or 'grid'"):
        search_config("demo", [parse_override("sampler.name=bayes")])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("sampler.name")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("samplr: {name: tpe}", r"samplr: unknown key \(did you mean 'sampler'\?\); expected one of: name, storage"),
        ("sampler: {nme: tpe}", r"sampler\.nme: unknown key \(did you mean 'name'\?\); expected one of: name, seed"),
        ("budget: {trials: 0}", r"budget\.trials: Input should be greater than or equal to 1"),
        ("budget: {wall_time: soon}", r"budget\.wall_time: .*'90s', '30m' or '2h'"),
        ("fidelity: {epochs: 4, grace_period: 4}", r"fidelity\.grace_period: 4 is not valid"),
        ("fidelity: {reduction_factor: 1}", r"fidelity\.reduction_factor: Input should be greater than 1"),
        ("resources: {gpus: -1}", r"resources\.gpus: Input should be greater than or equal to 0"),
        ("constraints: {max_gflops: 0}", r"constraints\.max_gflops: Input should be greater than 0"),
        ("train: {epochs: 3}", r"train\.epochs: set it as fidelity\.epochs"),
        ("train: {los: focal}", r"train\.los: unknown key \(did you mean 'loss'\?\)"),
        ("train: {loss: hinge}", r"train\.loss: 'hinge' is not valid"),
        ("space: {blocks: [none, sae]}", r"space\.blocks: 'sae' is not valid \(did you mean"),
        ("space: {colour: red}", r"space\.colour: unknown field"),
        ("data: {kind: dicom}", r"data\.kind: 'dicom' is not valid"),
        ("data: mnist", r"data: 'mnist' is not valid; expected synthetic, synthetic3d"),
        ("objectives: [dice]", r"objectives: List should have at least 2 items"),
        (
            "objectives: [dice, speed]",
            r"objectives\.1: Input should be 'dice', 'gflops', 'params', 'latency' or 'memory'",
        ),
        ("storage: mongodb://x/y", r"storage: backend 'mongodb'"),
        ("concurrency: two", r"concurrency: Input should be a positive integer or 'auto' \(got 'two'\)$"),
        ("concurrency: 0", r"concurrency: Input should be a positive integer or 'auto' \(got 0\)$"),
        ("name: 'bad name!'", r"name: String should match pattern"),
        ("[1, 2]", r"expected a mapping of keys"),
        ("sampler: {name: [tpe", r"not valid YAML"),
    ],
)
def test_every_config_error_names_its_key(tmp_path: Path, text: str, message: str) -> None:
    source = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        search_config(source)
    assert str(caught.value).startswith(source)


def test_an_unknown_config_names_the_presets() -> None:
    with pytest.raises(ConfigError, match="presets: attention-zoo, demo, ja-ablation, volumetric"):
        search_config("no-such.yaml")


def test_the_cli_prints_a_config_error_as_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "sampler: {name: annealing}\n")
    assert main(["search", source]) == 2
    err = capsys.readouterr().err
    assert "sampler.name" in err and "'nsga2', 'tpe', 'random' or 'grid'" in err and "Traceback" not in err
    assert main(["search", "demo", "--set", "fidelity.epoch=3"]) == 2
    assert "fidelity.epoch: unknown key (did you mean 'epochs'?)" in capsys.readouterr().err
