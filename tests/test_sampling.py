"""sample_spec: define-by-run over a declared space, never an invalid point."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import optuna
import pytest
import torch

from search_spaces import ArchSpec, SearchSpace, SpecError, build_model, level_subsets, sample_spec


class RandomTrial:
    """A TrialLike that records the names it was asked for."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        assert name not in self.params, f"parameter {name} asked twice"
        value = self.rng.choice(list(choices))
        self.params[name] = value
        return value


def test_level_subsets_are_all_non_empty_subsets() -> None:
    assert level_subsets([2, 0, 1]) == ("0", "1", "2", "0,1", "0,2", "1,2", "0,1,2")


def test_samples_are_valid_and_cover_the_space() -> None:
    seen_blocks, seen_variants = set(), set()
    for seed in range(300):
        spec = sample_spec(RandomTrial(seed))
        assert ArchSpec.from_json(spec.to_json()) == spec
        seen_blocks.add(spec.attention.block)
        if spec.attention.block == "compose":  # the joint preset, spelled out
            assert (spec.attention.option("a"), spec.attention.option("b")) == ("pwa", "sa")
            seen_variants.add((spec.attention.option("arrangement"), spec.attention.option("shortcut")))
    assert seen_blocks == {"none", "pwa", "sa", "compose"}
    assert len(seen_variants) == 9


def test_sampled_specs_build_and_run() -> None:
    for seed in range(6):
        spec = sample_spec(RandomTrial(seed), SearchSpace(base_widths=(4,)))
        out = build_model(spec)(torch.randn(1, 1, 32, 32))
        assert out.shape == (1, 2, 32, 32)


def test_restricted_options_and_levels_are_respected() -> None:
    space = SearchSpace(blocks=("sa",), options=(("sa.similarity", ("softmax",)),), depths=(4,), levels=(2,))
    for seed in range(20):
        spec = sample_spec(RandomTrial(seed), space)
        assert spec.attention.option("similarity") == "softmax"
        assert spec.attention.levels("skip") == (2,)


def test_works_with_a_real_optuna_study_and_a_fixed_name_set() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        spec = sample_spec(trial)
        study.tell(trial, [len(spec.channels), 1.0])
    names = {name for t in study.trials for name in t.params}
    assert "attention.block" in names and "backbone.depth" in names


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"blocks": ()}, "space.blocks"),
        ({"blocks": ("sse",)}, "space.blocks"),
        ({"options": (("sa.heads", (2,)),)}, "space.options.sa.heads"),
        ({"options": (("sa.similarity", ("cosine",)),)}, "space.options.sa.similarity"),
        ({"depths": (1,)}, "space.depths"),
        ({"levels": (7,)}, "space.levels"),
        ({"blocks": ("compose",)}, "space.pairs"),
        ({"pairs": (("pwa", "joint"),)}, "space.pairs"),
        ({"placements": ("middle",)}, "space.placements"),
        ({"backbones": ("vnet",)}, "space.backbones"),
        ({"blocks": ("gff",), "placements": ("decoder",)}, "space.blocks"),
        ({"blocks": ("compose",), "pairs": (("ag", "se"),), "placements": ("bottleneck",)}, "space.pairs"),
    ],
)
def test_bad_space_is_named(kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        SearchSpace(**kwargs)


def test_space_round_trips_through_json_data() -> None:
    space = SearchSpace(
        options=(("joint.shortcut", ("inside", "outside")),),
        levels=(0, 1),
        pairs=(("ag", "sa"),),
        blocks=("compose", "cbam"),
    )
    assert SearchSpace.from_dict(space.to_dict()) == space
