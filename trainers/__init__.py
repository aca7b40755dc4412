"""How one candidate is scored: data, losses, metrics, cost, train/evaluate."""

from __future__ import annotations

from trainers._cost import ModelCost, count_flops, count_params, model_cost
from trainers._data import DataConfig, SegmentationData, SyntheticConfig, data_config_from_dict, load_data
from trainers._errors import DataError
from trainers._loop import Report, TrainConfig, TrainResult, evaluate, train
from trainers._synthetic import make_synthetic, synthetic_sample

__all__ = [
    "DataConfig",
    "DataError",
    "ModelCost",
    "Report",
    "SegmentationData",
    "SyntheticConfig",
    "TrainConfig",
    "TrainResult",
    "count_flops",
    "count_params",
    "data_config_from_dict",
    "evaluate",
    "load_data",
    "make_synthetic",
    "model_cost",
    "synthetic_sample",
    "train",
]
