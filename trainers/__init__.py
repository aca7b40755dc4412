"""How one candidate is scored: data, losses, metrics, cost, train/evaluate."""

from __future__ import annotations

from trainers._cost import ModelCost, count_flops, count_params, model_cost
from trainers._data import DataConfig, SegmentationData, SyntheticConfig, data_config_from_dict, load_data
from trainers._errors import DataError
from trainers._loop import Report, TrainConfig, TrainResult, evaluate, train
from trainers._memory import MemoryEstimate, estimate_peak_memory, measure_peak_memory
from trainers._synthetic import make_synthetic, synthetic_sample

__all__ = [
    "DataConfig",
    "DataError",
    "MemoryEstimate",
    "ModelCost",
    "Report",
    "SegmentationData",
    "SyntheticConfig",
    "TrainConfig",
    "TrainResult",
    "count_flops",
    "count_params",
    "data_config_from_dict",
    "estimate_peak_memory",
    "evaluate",
    "load_data",
    "make_synthetic",
    "measure_peak_memory",
    "model_cost",
    "synthetic_sample",
    "train",
]
