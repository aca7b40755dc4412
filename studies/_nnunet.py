"""An exported trial as an nnU-Net v2 trainer: a ``nnUNetTrainer`` subclass that trains the found
architecture in nnU-Net's own pipeline (its planning, preprocessing, augmentation, loss and
five-fold cross-validation), found by nnU-Net through ``nnUNet_extTrainer``.

The trainer is written as source (``nnunet/<class>.py``) with the spec beside it (``<class>.json``,
the export's ``arch.json``); it imports nnU-Net and ``search_spaces`` only, so it runs in nnU-Net's
environment (which needs torchvision; attention-nas itself does not) with attention-nas importable.
How nnU-Net's plans are mapped onto the spec is written in the trainer's docstring.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

NNUNET_DIR = "nnunet"

_TEMPLATE = '''"""nnU-Net v2 trainer for an architecture attention-nas found: study {study!r}, trial {trial}.

Written by ``nas export --nnunet`` (spec hash {spec_hash}). nnU-Net finds it through
``nnUNet_extTrainer``; attention-nas must be importable in nnU-Net's environment::

    export nnUNet_extTrainer=/path/to/this/folder
    nnUNetv2_train DATASET CONFIGURATION FOLD -tr {cls}

The network is ``search_spaces.build_model`` of ``{cls}.json`` (the export's ``arch.json``), with
nnU-Net's plans mapped onto it:

- in/out channels: the dataset's (``num_input_channels``, the label manager's segmentation heads);
- patch size: each axis of the configuration's ``patch_size`` is rounded down to a multiple of the
  network's stride (``2 ** (depth - 1)``; ``2 ** depth`` for resnet34), written back into the plans so
  that nnU-Net's inference uses the same size; an axis smaller than the stride, or a configuration
  with another number of spatial axes than the spec's ``spatial_dims``, is refused with a line that
  names the field;
- pooling: the network pools by 2 on every axis at each of its levels (its own, not the plans'
  ``pool_op_kernel_sizes``), so deep supervision's targets are downsampled by 2 per level;
- deep supervision (nnU-Net's convention): auxiliary 1x1 heads on every decoder level but the
  coarsest, outputs listed from full resolution down, loss weights halving per level, the coarsest 0.
  The main path is exactly the spec's; the heads add parameters only for training.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn

ARCH_FILE = Path(__file__).with_suffix(".json")


class ArchitectureDoesNotFit(RuntimeError):
    """nnU-Net's plans ask for something this architecture cannot be mapped onto."""


def _arch() -> dict:
    return json.loads(ARCH_FILE.read_text())


def _stride(arch: dict) -> int:
    from search_spaces import ArchSpec, build_model

    model = build_model(ArchSpec.from_dict(arch))
    return int(model.size_multiple(len(arch["channels"])))


def fit_patch_size(arch: dict, configuration: str, patch_size: list) -> list:
    """``patch_size`` rounded down to multiples of the network's stride, or ArchitectureDoesNotFit."""
    dims = int(arch.get("spatial_dims", 2))
    if len(patch_size) != dims:
        raise ArchitectureDoesNotFit(
            f"patch_size: nnU-Net configuration {{configuration}} has {{len(patch_size)}} spatial axes "
            f"({{list(patch_size)}}) but {{ARCH_FILE.name}} has spatial_dims {{dims}}; train a "
            f"{{'2d' if dims == 2 else '3d_fullres'}} configuration"
        )
    stride = _stride(arch)
    fitted = [int(size) // stride * stride for size in patch_size]
    if min(fitted) < stride:
        raise ArchitectureDoesNotFit(
            f"patch_size: {{list(patch_size)}} of configuration {{configuration}} has an axis smaller than the "
            f"network's stride {{stride}} ({{len(arch['channels'])}} levels); use a larger patch_size in the plans "
            "or export an architecture with fewer levels"
        )
    return fitted


def _resolved(plans: dict, configuration: str, key: str):
    conf = plans["configurations"][configuration]
    while key not in conf and "inherits_from" in conf:
        conf = plans["configurations"][conf["inherits_from"]]
    return conf[key]


def build_network(num_input_channels: int, num_output_channels: int, deep_supervision: bool) -> nn.Module:
    from search_spaces import ArchSpec, build_model

    arch = dict(_arch())
    heads = max(0, len(arch["channels"]) - 2)
    arch.update(in_channels=int(num_input_channels), out_channels=int(num_output_channels), deep_supervision=heads)
    return DeepSupervised(build_model(ArchSpec.from_dict(arch)), deep_supervision and heads > 0)


class DeepSupervised(nn.Module):
    """The network with nnU-Net's deep-supervision switch: with ``deep_supervision`` on, the list of
    outputs from full resolution down, in eval mode too (nnU-Net's validation loss takes them all);
    off, the main logits only."""

    def __init__(self, network: nn.Module, deep_supervision: bool) -> None:
        super().__init__()
        self.network = network
        self.deep_supervision = deep_supervision

    def forward(self, x: torch.Tensor):
        if not self.deep_supervision:
            out = self.network(x)
            return out[0] if isinstance(out, tuple) else out
        training = self.network.training
        # Only the top module's flag, which selects the heads: norm layers keep their own mode.
        self.network.training = True
        try:
            return list(self.network(x))
        finally:
            self.network.training = training


class {cls}(nnUNetTrainer):
    """nnU-Net's trainer with the network of ``{cls}.json`` (see the module's docstring)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        arch = _arch()
        original = list(_resolved(plans, configuration, "patch_size"))
        fitted = fit_patch_size(arch, repr(configuration), original)
        plans["configurations"][configuration]["patch_size"] = fitted
        super().__init__(plans, configuration, fold, dataset_json, device)
        if len(arch["channels"]) < 3:  # no decoder level above the final head to supervise
            self.enable_deep_supervision = False
        if fitted != original:
            self.print_to_log_file(
                f"{cls}: patch_size {{original}} rounded down to {{fitted}}, multiples of the network's stride",
                also_print_to_console=True,
            )

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        fit_patch_size(_arch(), "of the plans", list(configuration_manager.patch_size))
        return build_network(num_input_channels, num_output_channels, enable_deep_supervision)

    def _get_deep_supervision_scales(self):
        if not self.enable_deep_supervision:
            return None
        dims = len(self.configuration_manager.patch_size)
        levels = len(_arch()["channels"]) - 1  # full resolution and every decoder level but the coarsest
        return [[1.0 / 2**level] * dims for level in range(levels)]

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        module = self.network.module if self.is_ddp else self.network
        module = getattr(module, "_orig_mod", module)  # torch.compile's wrapper
        module.deep_supervision = enabled
'''


def trainer_name(study: str, trial: int) -> str:
    """``nnUNetTrainer_<study>_<trial>``, with every character Python names cannot hold replaced by ``_``."""
    return "nnUNetTrainer_" + re.sub(r"\W", "_", f"{study}_{trial}", flags=re.ASCII)


def write_nnunet(target: Path, study: str, record: Any) -> dict[str, Any]:
    """Write the trainer (``nnunet/<class>.py``) and its spec (``nnunet/<class>.json``) under ``target``."""
    assert record.spec is not None
    name = trainer_name(study, record.number)
    folder = target / NNUNET_DIR
    folder.mkdir(parents=True, exist_ok=True)
    source = _TEMPLATE.format(study=study, trial=record.number, spec_hash=record.spec_hash, cls=name)
    (folder / f"{name}.py").write_text(source)
    (folder / f"{name}.json").write_text(json.dumps(dict(record.spec), indent=2, sort_keys=True) + "\n")
    return {"folder": NNUNET_DIR, "trainer": name, "file": f"{NNUNET_DIR}/{name}.py"}


def nnunet_card(study: str, record: Any) -> str:
    """The model card's section on training the architecture in nnU-Net v2."""
    name = trainer_name(study, record.number)
    return f"""
## Training it in nnU-Net v2
`{NNUNET_DIR}/{name}.py` is an nnU-Net v2 (2.8+) trainer that builds this architecture (from
`{NNUNET_DIR}/{name}.json`, this `arch.json`) with nnU-Net's deep-supervision convention. In the
environment nnU-Net runs in (nnunetv2 needs torchvision), make attention-nas importable
(`pip install attention-nas`, or `PYTHONPATH` on a checkout), plan and preprocess your dataset as usual, then:
```
export nnUNet_extTrainer=$PWD/{NNUNET_DIR}
nnUNetv2_plan_and_preprocess -d DATASET --verify_dataset_integrity
nnUNetv2_train DATASET CONFIGURATION FOLD -tr {name}
nnUNetv2_predict -i IMAGES -o OUT -d DATASET -c CONFIGURATION -f FOLD -tr {name}
```
CONFIGURATION is `2d` for a spec with spatial_dims 2 and `3d_fullres` for 3. The plans' patch size is
rounded down to multiples of the network's stride; an axis smaller than the stride, or a configuration
of the other dimensionality, is refused with a line that names `patch_size`.
"""
