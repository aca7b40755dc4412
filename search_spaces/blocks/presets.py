"""Named presets: compositions the papers gave names to (joint attention, CBAM, DA-block, bilateral)."""

from __future__ import annotations

from collections.abc import Mapping

from search_spaces._registry import OptionValue, register_preset
from search_spaces.blocks.cbam import KERNELS, REDUCTIONS
from search_spaces.blocks.isam import DEPTHS, WINDOWS
from search_spaces.blocks.sa import SIMILARITIES

#: The joint-attention paper's names for the arrangements of PWA (A) and SA (B).
ARRANGEMENTS = ("parallel", "sa_first", "pwa_first")
SHORTCUTS = ("inside", "outside", "separate")
_JA_ARRANGEMENT = {"parallel": "parallel", "sa_first": "b_first", "pwa_first": "a_first"}


def _joint(options: Mapping[str, OptionValue]) -> tuple[str, dict[str, OptionValue]]:
    return "compose", {
        "a": "pwa",
        "b": "sa",
        "arrangement": _JA_ARRANGEMENT[str(options["arrangement"])],
        "shortcut": options["shortcut"],
        "b.similarity": options["similarity"],
    }


def _channel_spatial(arrangement: str, shortcut: str) -> object:
    def expand(options: Mapping[str, OptionValue]) -> tuple[str, dict[str, OptionValue]]:
        return "compose", {
            "a": "cbam_channel",
            "b": "cbam_spatial",
            "arrangement": arrangement,
            "shortcut": shortcut,
            "a.reduction": options["reduction"],
            "b.kernel_size": options["kernel_size"],
        }

    return expand


def _bilateral(options: Mapping[str, OptionValue]) -> tuple[str, dict[str, OptionValue]]:
    return "compose", {
        "a": "isam",
        "b": "fsam",
        "arrangement": "a_first",
        "shortcut": "inside",
        "a.window": options["window"],
        "a.depth": options["depth"],
    }


register_preset(
    "joint",
    options={"arrangement": ARRANGEMENTS, "shortcut": SHORTCUTS, "similarity": SIMILARITIES},
    expand=_joint,
    summary="Joint attention (DenseUNet-JA): the nine PWA × SA variants, as compose(pwa, sa).",
)
register_preset(
    "cbam",
    options={"reduction": REDUCTIONS, "kernel_size": KERNELS},
    expand=_channel_spatial("a_first", "inside"),  # type: ignore[arg-type]
    summary="CBAM: channel then spatial attention in series, as compose(cbam_channel, cbam_spatial).",
)
register_preset(
    "da_block",
    options={"reduction": REDUCTIONS, "kernel_size": KERNELS},
    expand=_channel_spatial("parallel", "none"),  # type: ignore[arg-type]
    summary="AF-Net DA-block: channel ∥ spatial attention, summed, as compose(cbam_channel, cbam_spatial).",
)
register_preset(
    "bilateral",
    options={"window": WINDOWS, "depth": DEPTHS},
    expand=_bilateral,
    summary="Bilateral spatial attention: image-space then feature-space attention, as compose(isam, fsam).",
)
