"""How one candidate is scored: data, losses, metrics, cost, train/evaluate."""

from __future__ import annotations

from trainers._cost import ModelCost, count_flops, count_params, measure_latency, model_cost
from trainers._data import Samples, SegmentationData, SyntheticConfig, data_config_from_dict, load_data
from trainers._errors import DataError
from trainers._files import FILE_KINDS, FilesConfig, load_files, split_cases
from trainers._loop import (
    COLLAPSE_RATIO,
    OPTIMIZERS,
    SCHEDULES,
    Report,
    TrainConfig,
    TrainResult,
    collapse_note,
    determinism_note,
    evaluate,
    evaluate_metrics,
    init_head_prior,
    make_optimizer,
    make_schedule,
    predict,
    resolve_device,
    seed_everything,
    train,
    training_loader,
)
from trainers._losses import LOSSES, create_loss
from trainers._memory import MemoryEstimate, estimate_peak_memory, measure_peak_memory
from trainers._metrics import CLASS_METRICS, IMAGE_METRICS, METRIC_NAMES, SegmentationMetrics, segmentation_metrics
from trainers._sources import Case, index_drive, index_folder2d, index_msd, index_nnunet, read_json_object
from trainers._synthetic import make_synthetic, synthetic_sample, synthetic_volume
from trainers._tta import TTA_MODES, FlipInferer, class_probabilities, flip_averaged, flip_axes

__all__ = [
    "CLASS_METRICS",
    "COLLAPSE_RATIO",
    "FILE_KINDS",
    "IMAGE_METRICS",
    "LOSSES",
    "METRIC_NAMES",
    "OPTIMIZERS",
    "SCHEDULES",
    "TTA_MODES",
    "Case",
    "DataError",
    "FilesConfig",
    "FlipInferer",
    "MemoryEstimate",
    "ModelCost",
    "Report",
    "Samples",
    "SegmentationData",
    "SegmentationMetrics",
    "SyntheticConfig",
    "TrainConfig",
    "TrainResult",
    "class_probabilities",
    "collapse_note",
    "count_flops",
    "count_params",
    "create_loss",
    "data_config_from_dict",
    "determinism_note",
    "estimate_peak_memory",
    "evaluate",
    "evaluate_metrics",
    "flip_averaged",
    "flip_axes",
    "index_drive",
    "index_folder2d",
    "index_msd",
    "index_nnunet",
    "init_head_prior",
    "load_data",
    "load_files",
    "make_optimizer",
    "make_schedule",
    "make_synthetic",
    "measure_latency",
    "measure_peak_memory",
    "model_cost",
    "predict",
    "read_json_object",
    "resolve_device",
    "seed_everything",
    "segmentation_metrics",
    "split_cases",
    "synthetic_sample",
    "synthetic_volume",
    "train",
    "training_loader",
]
