"""``nas space show``: how many distinct architectures a declared space holds, and a few of them."""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from typing import Any

from nas._config import load_space
from nas.cli._common import non_negative_int
from search_spaces import SampleContext, count_architectures, sample_spec


class _SeededTrial:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("space", help="inspect a search space")
    actions = p.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="count the distinct architectures of a space and show samples")
    show.add_argument("--space", default="demo", help="demo, widest, or a JSON file of space fields (default demo)")
    show.add_argument("--samples", type=non_negative_int, default=5, help="how many random members to list")
    show.add_argument("--seed", type=non_negative_int, default=0)
    show.add_argument("--spatial-dims", type=int, choices=(2, 3), default=2)
    show.set_defaults(handler=run_show)


def run_show(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    print(f"space {args.space}:")
    composing = "compose" in space.blocks
    for key, value in space.to_dict().items():
        if value in (None, [], {}) or (key in ("pairs", "arrangements", "shortcuts") and not composing):
            continue
        if key == "pairs" and len(value) > 8:
            print(f"  pairs: {len(value)} ordered pairs, e.g. {json.dumps(value[:3])[1:-1]}, ...")
        else:
            print(f"  {key}: {json.dumps(value)}")
    print(f"distinct architectures: {count_architectures(space):,} (specs with equal hashes counted once)")
    if args.samples:
        print(f"{args.samples} samples (seed {args.seed}):")
        context = SampleContext(spatial_dims=args.spatial_dims)
        for index in range(args.samples):
            spec = sample_spec(_SeededTrial(args.seed * 100_003 + index), space, context)
            print(f"  {spec.spec_hash()[:12]}  {spec.short_label()}")
    return 0
