"""A picture of one architecture: the U-shaped backbone with its attention sites, as inline SVG.

``diagram_data`` reads an ``ArchSpec`` dict (as stored on a trial) into boxes, edges and badges;
``diagram_svg`` draws them. SVG keeps the picture crisp, offline and equally usable in the Dash app
(as an image) and in the self-contained report (inline).
"""

from __future__ import annotations

import html
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ROW = 54  # vertical distance between resolution levels
_TOP = 58
_BOX_W, _BOX_H = 120, 30
_LEFT_X, _RIGHT_X, _WIDTH = 20, 400, 540
_LINK = {"parallel": "∥", "a_first": "→", "b_first": "←"}
#: Badge colours by placement, so the four placements read apart at a glance.
PLACEMENT_COLOURS = {"encoder": "#1f77b4", "skip": "#d62728", "bottleneck": "#9467bd", "decoder": "#2ca02c"}


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    label: str
    role: str  # encoder | bottleneck | decoder
    level: int
    attention: str | None  # the badge text when attention sits in this box


@dataclass(frozen=True)
class Edge:
    x1: float
    y1: float
    x2: float
    y2: float
    kind: str  # down | up | skip | gate


@dataclass(frozen=True)
class Badge:
    x: float
    y: float
    text: str
    placement: str
    level: int


@dataclass(frozen=True)
class Diagram:
    title: str
    caption: str
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    badges: tuple[Badge, ...]
    height: int

    def sites(self) -> set[tuple[str, int]]:
        """(placement, level) of every attention site drawn."""
        return {(b.placement, b.level) for b in self.badges}


def mechanism_text(attention: Mapping[str, Any]) -> str:
    """The attention mechanism in words, e.g. ``pwa ∥ sa, shortcut inside`` or ``sa (dot)``."""
    block = str(attention.get("block", "none"))
    options = dict(attention.get("options", {}))
    if block == "none":
        return "no attention"
    if block == "compose":
        link = _LINK.get(str(options.get("arrangement")), "+")
        members = [f"{k}={v}" for k, v in options.items() if k[:2] in ("a.", "b.")]
        extra = f" ({', '.join(members)})" if members else ""
        return f"{options.get('a')} {link} {options.get('b')}, shortcut {options.get('shortcut')}{extra}"
    if options:
        return f"{block} ({', '.join(str(v) for v in options.values())})"
    return block


def _badge_text(attention: Mapping[str, Any]) -> str:
    block = str(attention.get("block", "none"))
    if block == "compose":
        options = attention.get("options", {})
        return f"{options.get('a')}{_LINK.get(str(options.get('arrangement')), '+')}{options.get('b')}"
    return block


#: search_spaces' registered blocks, and those of them that take a gating signal (``needs_gate``;
#: ``compose`` does when A or B does, as ``composition_uses_gate`` says; the presets expand to
#: compositions without a gate): a diagram of these needs no torch. Importing the registry imports
#: torch and MONAI, ~350 MB more for the dashboard server (``bench/dashboard.py``).
#: ``tests/test_dashboard_views.py`` checks both sets against the registry.
BUILT_IN_BLOCKS = frozenset(
    {
        "ag", "axial", "bam", "bilateral", "cam", "cbam", "cbam_channel", "cbam_spatial", "cca", "compose",
        "coordinate", "da_block", "eca", "fsam", "gff", "isam", "joint", "mff", "none", "pam", "pwa", "sa",
        "se", "sk",
    }
)  # fmt: skip
GATED_BLOCKS = frozenset({"ag", "gff"})


def _registered_gate(block: str, options: Mapping[str, Any]) -> bool:
    """A block registered outside ``search_spaces`` (a plugin the process imported): its registry
    entry decides. Asked only when the registry is loaded already: importing it for a name nobody
    registered here would cost torch and still not know it."""
    if "search_spaces" not in sys.modules:
        return False
    from search_spaces import SpecError, block_info

    try:
        info = block_info(block)
        return info.uses_gate(info.resolve_options(options, field_name="attention.options"))
    except (SpecError, KeyError, ValueError, TypeError):
        return False


def _gated(attention: Mapping[str, Any]) -> bool:
    """Whether the block takes the coarser decoder feature as a gating signal."""
    block = str(attention.get("block", "none"))
    options = dict(attention.get("options", {}))
    if block == "compose":
        return any(_gated({"block": str(options.get(role))}) for role in ("a", "b"))
    if block in BUILT_IN_BLOCKS:
        return block in GATED_BLOCKS
    return _registered_gate(block, options)


def diagram_data(spec: Mapping[str, Any]) -> Diagram:
    """Lay out the encoder (left), bottleneck (bottom), decoder (right) and the attention sites."""
    channels = [int(c) for c in spec.get("channels", ())]
    if len(channels) < 2:
        raise ValueError(f"spec.channels: {channels!r} has fewer than 2 levels; cannot draw a U-Net")
    depth = len(channels)
    mechanisms = [dict(spec.get("attention", {})), *(dict(a) for a in spec.get("extra_attention", ()))]
    mechanisms = [m for m in mechanisms if m.get("block", "none") != "none"]
    # Every site that holds a block: (placement, level) → (badge text, gated)
    sites: dict[tuple[str, int], tuple[str, bool]] = {}
    for attention in mechanisms:
        for name, levels in dict(attention.get("placement", {})).items():
            for level in levels:
                sites[str(name), int(level)] = (_badge_text(attention), _gated(attention))
    boxes: list[Box] = []
    edges: list[Edge] = []
    badges: list[Badge] = []

    def row(level: int) -> float:
        return _TOP + level * _ROW

    mid_x = (_WIDTH - _BOX_W) / 2
    for level in range(depth - 1):
        y = row(level)
        for role, x in (("encoder", _LEFT_X), ("decoder", _RIGHT_X)):
            here = sites.get((role, level))
            text = here[0] if here else None
            boxes.append(Box(x, y, f"{role[:3]} L{level} · {channels[level]}", role, level, text))
            if here:
                badges.append(Badge(x + _BOX_W / 2, y - 4, here[0], role, level))
        skip_y = y + _BOX_H / 2
        edges.append(Edge(_LEFT_X + _BOX_W, skip_y, _RIGHT_X, skip_y, "skip"))
        skip = sites.get(("skip", level))
        if skip:
            bx = (_LEFT_X + _BOX_W + _RIGHT_X) / 2
            badges.append(Badge(bx, skip_y, skip[0], "skip", level))
            if skip[1]:  # the gating signal comes from the decoder one level deeper
                source_x = _RIGHT_X + _BOX_W / 2 if level + 1 < depth - 1 else mid_x + _BOX_W
                edges.append(Edge(source_x, row(level + 1), bx + 18, skip_y + 9, "gate"))
        below_left = _LEFT_X + _BOX_W / 2 if level + 1 < depth - 1 else mid_x
        below_right = _RIGHT_X + _BOX_W / 2 if level + 1 < depth - 1 else mid_x + _BOX_W
        edges.append(Edge(_LEFT_X + _BOX_W / 2, y + _BOX_H, below_left, row(level + 1), "down"))
        edges.append(Edge(below_right, row(level + 1), _RIGHT_X + _BOX_W / 2, y + _BOX_H, "up"))
    bottom = depth - 1
    here = sites.get(("bottleneck", bottom))
    boxes.append(Box(mid_x, row(bottom), f"bottleneck L{bottom} · {channels[bottom]}", "bottleneck", bottom, None))
    if here:
        badges.append(Badge(mid_x + _BOX_W / 2, row(bottom) - 4, here[0], "bottleneck", bottom))
    dims = f"{spec.get('spatial_dims', 2)}D"
    title = f"{spec.get('backbone', 'unet')} · {dims} · {'-'.join(map(str, channels))}"
    caption = " + ".join(mechanism_text(m) for m in mechanisms) or mechanism_text({})
    if any(gated for _, gated in sites.values()):
        caption += " · gated by the coarser decoder feature"
    return Diagram(title, caption, tuple(boxes), tuple(edges), tuple(badges), int(row(bottom) + _BOX_H + 40))


_EDGE_STYLE = {
    "down": 'stroke="#555" marker-end="url(#arrow)"',
    "up": 'stroke="#555" marker-end="url(#arrow)"',
    "skip": 'stroke="#999" stroke-dasharray="6 4" marker-end="url(#arrow)"',
    "gate": 'stroke="#d62728" stroke-dasharray="2 3" marker-end="url(#arrow)"',
}


def diagram_svg(data: Diagram) -> str:
    """The diagram as a standalone SVG document."""
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{data.height}" '
        f'viewBox="0 0 {_WIDTH} {data.height}" font-family="system-ui,sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        f'<text x="{_WIDTH / 2}" y="18" text-anchor="middle" font-weight="bold">{e(data.title)}</text>',
        f'<text x="{_WIDTH / 2}" y="36" text-anchor="middle">{e(data.caption)}</text>',
    ]
    for edge in data.edges:
        parts.append(
            f'<line x1="{edge.x1:.1f}" y1="{edge.y1:.1f}" x2="{edge.x2:.1f}" y2="{edge.y2:.1f}" '
            f'{_EDGE_STYLE[edge.kind]} class="edge-{edge.kind}"/>'
        )
    for box in data.boxes:
        fill = "#eef3fb" if box.attention is None else "#fde9c9"
        parts.append(
            f'<rect x="{box.x}" y="{box.y}" width="{_BOX_W}" height="{_BOX_H}" rx="5" fill="{fill}" '
            f'stroke="#445" class="box-{box.role}"/>'
            f'<text x="{box.x + _BOX_W / 2}" y="{box.y + _BOX_H / 2 + 4}" text-anchor="middle">{e(box.label)}</text>'
        )
    for b in data.badges:
        width = 14 + 7 * len(b.text)
        colour = PLACEMENT_COLOURS.get(b.placement, "#333")
        parts.append(
            f'<g class="site site-{e(b.placement)}" data-level="{b.level}">'
            f'<rect x="{b.x - width / 2:.1f}" y="{b.y - 10:.1f}" width="{width}" height="20" rx="10" '
            f'fill="{colour}"/><text x="{b.x:.1f}" y="{b.y + 4:.1f}" text-anchor="middle" fill="white">'
            f"{e(b.text)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
