"""ArchSpec: JSON round trip, canonical form, stable hash, validation messages."""

from __future__ import annotations

import json

import pytest

from search_spaces import ArchSpec, AttentionSpec, SpecError, build_model


def joint_spec(**options: str) -> ArchSpec:
    return ArchSpec(
        channels=(8, 16, 32),
        attention=AttentionSpec("joint", tuple(options.items()), (("skip", (1, 0)),)),
    )


def test_json_round_trip_preserves_equality_and_hash() -> None:
    spec = joint_spec(arrangement="sa_first", shortcut="outside")
    text = spec.to_json()
    again = ArchSpec.from_json(text)
    assert again == spec
    assert again.spec_hash() == spec.spec_hash()
    assert json.loads(text)["attention"]["placement"] == {"skip": [0, 1]}


def test_hash_is_stable_across_processes_and_versions() -> None:
    # A golden value: if this changes, every stored study's spec_hash stops matching its specs.
    spec = ArchSpec(channels=(8, 16, 32), attention=AttentionSpec("sa", (), (("skip", (0,)),)))
    assert spec.spec_hash() == "ee78a3faf0b778cfe8455cca6ee8005bc7bc83710a8f6af68304130c36c505b0"


def test_defaults_and_order_are_canonicalised() -> None:
    explicit = joint_spec(arrangement="parallel", shortcut="inside", similarity="dot")
    implicit = joint_spec()
    assert explicit == implicit
    assert explicit.spec_hash() == implicit.spec_hash()
    different = joint_spec(shortcut="outside")
    assert different.spec_hash() != implicit.spec_hash()


def test_none_block_ignores_nothing_and_has_no_placement() -> None:
    assert ArchSpec().attention.placement == ()
    with pytest.raises(SpecError, match=r"attention\.placement"):
        AttentionSpec("none", (), (("skip", (0,)),))


@pytest.mark.parametrize(
    ("data", "field", "accepted"),
    [
        ({"spatial_dims": 4}, "spatial_dims", "2, 3"),
        ({"channels": [8]}, "channels", "2 to 6"),
        ({"channels": [8, -1]}, "channels", "positive"),
        ({"norm": "group"}, "norm", "'instance', 'batch'"),
        ({"backbone": "unte"}, "backbone", "did you mean 'unet'"),
        ({"out_channels": 0}, "out_channels", "positive integer"),
        ({"schema_version": 99}, "schema_version", "reads 1"),
        ({"colour": "red"}, "spec.colour", "expected fields"),
        ({"attention": {"block": "jiont"}}, "attention.block", "did you mean 'joint'"),
        (
            {"attention": {"block": "sa", "options": {"similarity": "cosine"}, "placement": {"skip": [0]}}},
            "attention.options.similarity",
            "'dot', 'softmax'",
        ),
        (
            {"attention": {"block": "sa", "options": {"heads": 2}, "placement": {"skip": [0]}}},
            "attention.options",
            "similarity",
        ),
        ({"attention": {"block": "sa", "placement": {}}}, "attention.placement", "at least one"),
        (
            {"attention": {"block": "sa", "placement": {"middle": [0]}}},
            "attention.placement",
            "'skip', 'encoder', 'bottleneck', 'decoder'",
        ),
        (
            {"attention": {"block": "sa", "placement": {"bottleneck": [0]}}},
            "attention.placement.bottleneck",
            "bottleneck levels are [3]",
        ),
        (
            {"attention": {"block": "ag", "placement": {"skip": [0], "encoder": [1]}}},
            "attention.placement",
            "gating signal",
        ),
        (
            {"attention": {"block": "sa", "placement": {"skip": [3]}}},
            "attention.placement.skip",
            "skip levels are [0, 1, 2]",
        ),
        ({"attention": {"block": "sa", "placement": {"skip": []}}}, "attention.placement.skip", "non-empty"),
    ],
)
def test_invalid_specs_name_the_field_and_what_is_accepted(data: dict, field: str, accepted: str) -> None:
    base = ArchSpec().to_dict()
    base.update(data)
    with pytest.raises(SpecError) as info:
        ArchSpec.from_dict(base)
    message = str(info.value)
    assert field in message
    assert accepted in message


def test_invalid_json_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{not json")


def test_spec_is_hashable_and_frozen() -> None:
    spec = joint_spec()
    assert {spec: 1}[joint_spec()] == 1
    with pytest.raises(AttributeError):
        spec.norm = "batch"  # type: ignore[misc]


def test_built_model_follows_the_spec() -> None:
    spec = joint_spec()
    model = build_model(spec)
    names = [type(site.block).__name__ for site in model.skip_attention]
    assert names == ["Composition", "Composition"]
    spec_no_attention = ArchSpec(channels=(8, 16, 32))
    assert all(site.block is None for site in build_model(spec_no_attention).skip_attention)
