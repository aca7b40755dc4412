"""Study config files: YAML validated with pydantic, presets shipped with the package, overrides.

A file declares one search. Every mistake is reported with the dotted key it is about and what the
key accepts, e.g. ``demo.yaml: sampler.name: Input should be 'nsga2', 'tpe', 'random' or 'grid'``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from nas._config import SYNTHETIC, SearchConfig, load_space, unique_study_name
from nas._constraints import Constraints
from nas._errors import ConfigError
from nas._fit import AUTO, InitSource, init_map_choices
from search_spaces import SearchSpace, SpecError, count_architectures
from studies import DEFAULT_STORAGE, StudyError
from trainers import DataError, FilesConfig, SyntheticConfig, TrainConfig, data_config_from_dict

Objective = Literal["dice", "gflops", "params", "latency", "memory"]
DEFAULT_OBJECTIVES: tuple[Objective, ...] = ("dice", "gflops")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConstraintsSection(_Section):
    """Candidates over any bound are recorded INFEASIBLE without training (cost at batch 1)."""

    max_gflops: float | None = Field(default=None, gt=0)
    max_params: float | None = Field(default=None, gt=0)
    max_memory_mb: float | None = Field(default=None, gt=0)


class SamplerSection(_Section):
    name: Literal["nsga2", "tpe", "random", "grid"] = "nsga2"
    seed: int = Field(default=0, ge=0)
    #: NSGA-II population (default: a quarter of the trials, between 4 and 10).
    population: int | None = Field(default=None, ge=2)
    #: Training seeds per architecture (0..replicates-1), e.g. for an ablation's error bars.
    replicates: int = Field(default=1, ge=1)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


class BudgetSection(_Section):
    #: Trials that train (default 20; with the grid sampler, the whole grid).
    trials: int | None = Field(default=None, ge=1)
    #: Wall time of one run, as seconds or "90s", "30m", "2h"; trials still running end PRUNED.
    wall_time: float | None = Field(default=None, gt=0)

    @field_validator("wall_time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError("expected seconds or a duration such as '90s', '30m' or '2h'")
            return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
        return value


class FidelitySection(_Section):
    epochs: int = Field(default=10, ge=1)
    #: ASHA early stopping on validation Dice: the first rung, in epochs (null: every trial runs all epochs).
    grace_period: int | None = Field(default=None, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1)
    #: How a rung ranks trials: pareto (non-dominated sorting of Dice and the counted costs, MOASHA)
    #: or dice (validation Dice alone, Ray's ASHA).
    promotion: Literal["pareto", "dice"] = "pareto"


class ConfirmSection(_Section):
    """After the search's budget: front members and their no-attention twins trained again with
    fresh seeds at the full epoch budget; the front shown is theirs (members 0: off)."""

    members: int = Field(default=3, ge=0)
    seeds: int = Field(default=3, ge=2)
    #: Only when the search's budget is at least this many trials.
    min_trials: int = Field(default=10, ge=1)


class ResourcesSection(_Section):
    """Per trial. Fractional GPUs share a device (e.g. 0.25: four trials per GPU)."""

    cpus: float = Field(default=1.0, gt=0)
    gpus: float = Field(default=0.0, ge=0)


class WeightsSection(_Section):
    keep: Literal["pareto", "all"] = "pareto"
    top: int = Field(default=3, ge=0)


class StudyFile(_Section):
    """One search, as declared in a YAML file (see ``nas/presets/*.yaml`` for examples)."""

    #: The study's name (default: unique, search-<time>-<id>); the same name resumes the study.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    storage: str = DEFAULT_STORAGE
    data: str | dict[str, Any] = "synthetic"
    space: str | dict[str, Any] = "demo"
    #: 2 or 3 objectives: dice is maximised, the others minimised.
    objectives: list[Objective] = Field(default_factory=lambda: list(DEFAULT_OBJECTIVES), min_length=2, max_length=3)
    constraints: ConstraintsSection = Field(default_factory=ConstraintsSection)
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    fidelity: FidelitySection = Field(default_factory=FidelitySection)
    confirm: ConfirmSection = Field(default_factory=ConfirmSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    #: Trials at once, or ``auto``: as many as the Ray cluster's CPUs (and GPUs) hold per trial.
    concurrency: int | Literal["auto"] = 2

    @field_validator("concurrency", mode="before")
    @classmethod
    def _positive_concurrency(cls, value: Any) -> int | str:
        # before the union: its two branches' errors would be two lines naming pydantic's branch tags
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise PydanticCustomError("concurrency", "Input should be a positive integer or 'auto'")

    train: dict[str, Any] = Field(default_factory=dict)
    baselines: bool = True
    weights: WeightsSection = Field(default_factory=WeightsSection)
    out_dir: str = "nas-runs"
    address: str | None = None


#: Training fields a study file may set under ``train:`` (epochs and seed have their own keys).
TRAIN_KEYS = tuple(f for f in TrainConfig.__dataclass_fields__ if f not in ("epochs", "seed"))
#: ``train:`` keys that are no training field: the weights every trial starts from, and their name map.
INIT_KEYS = ("init", "init_map")


def preset_names() -> tuple[str, ...]:
    """The study presets shipped with the package."""
    folder = resources.files("nas") / "presets"
    return tuple(sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")))


#: The most values (mappings, lists and scalars, each alias counted as what it expands to) a study
#: file or ``--set`` value may hold: far above any real study, far below what exhausts memory.
MAX_YAML_VALUES = 100_000


class _NotYaml(Exception):
    """Text that does not parse as YAML (``--set`` then takes it as a plain string)."""


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last).
    Keys brought in by a merge (``<<: *defaults``) may be overridden: that is what a merge is for."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, line, seen[key])
                    seen[key] = line
                except TypeError:  # an unhashable key: the base class reports it
                    continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, shown: str) -> Any:
    """The value of YAML ``text``, or a ``ConfigError`` naming ``shown`` (the file or ``--set``
    option): for text that is not YAML, a key given twice, an alias that refers to itself, or aliases
    that expand to more than ``MAX_YAML_VALUES`` values (a few hundred bytes of nested aliases can
    expand to billions: a "billion laughs" file)."""
    try:
        value = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no python tags
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{shown}: line {dup.line}: key {dup.key!r} is given twice (first on line {dup.first}); give each key once"
        ) from None
    except yaml.YAMLError as exc:
        if shown.startswith("--set"):
            raise _NotYaml from None
        raise ConfigError(f"{shown}: not valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise ConfigError(f"{shown}: nested too deeply to read") from None
    try:
        _count_values(value, {}, set())
    except _SelfReference:
        raise ConfigError(
            f"{shown}: an alias (*name) refers to a value that contains it; write the value out"
        ) from None
    except _TooManyValues:
        raise ConfigError(
            f"{shown}: its aliases (*name) expand to more than {MAX_YAML_VALUES} values; "
            "write the values out or use fewer nested aliases"
        ) from None
    return value


class _SelfReference(Exception):
    pass


class _TooManyValues(Exception):
    pass


def _count_values(value: Any, memo: dict[int, int], active: set[int]) -> int:
    """How many values ``value`` holds once every alias is expanded (as a deep copy would), computed
    once per shared object, so it is fast however far the aliases expand."""
    if not isinstance(value, dict | list):
        return 1
    key = id(value)
    if key in memo:
        return memo[key]
    if key in active:
        raise _SelfReference
    active.add(key)
    total = 1
    for child in value.values() if isinstance(value, dict) else value:
        total += _count_values(child, memo, active)
        if total > MAX_YAML_VALUES:
            raise _TooManyValues
    active.discard(key)
    memo[key] = total
    return total


def read_study_file(source: str) -> tuple[dict[str, Any], str, Path]:
    """``(raw mapping, name for messages, folder relative paths are taken from)`` of a preset name or
    a YAML file."""
    if source in preset_names():
        text = (resources.files("nas") / "presets" / f"{source}.yaml").read_text(encoding="utf-8")
        shown, base = f"preset {source}", Path.cwd()
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"study config {source!r}: no such file, and not a preset (presets: {', '.join(preset_names())})"
            )
        shown, base = str(path), path.resolve().parent
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{shown}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                "save the study file as UTF-8"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{shown}: cannot read it ({exc.strerror or exc})") from None
    raw = load_yaml(text, shown)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: expected a mapping of keys (name, data, space, sampler, ...) at the top")
    return raw, shown, base


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """``raw`` with each dotted ``key`` set to its value (``sampler.name`` → ``raw["sampler"]["name"]``)."""
    result: dict[str, Any] = _deep_copy(raw)
    for key, value in overrides:
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None or isinstance(child, str) else child
                if not isinstance(child, dict):
                    raise ConfigError(f"{key}: {part!r} holds {child!r}, not a mapping of keys")
                node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--set``; the value is read as YAML (``3``, ``0.5``, ``null``, ``[a, b]``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set sampler.name=tpe")
    try:
        return key.strip(), load_yaml(value, f"--set {text!r}")
    except _NotYaml:
        return key.strip(), value


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = StudyFile
    for part in loc:
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model


def _describe(error: Mapping[str, Any], given_as: Mapping[str, str]) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith(("str", "dict[", "function-"))]
    key = ".".join(loc) or "(top level)"
    if key in given_as:
        key = f"{key} (given as {given_as[key]})"
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{key}: unknown key{hint}; expected one of: {', '.join(known)}"
    message = str(error["msg"])
    if error["type"] == "missing":
        return f"{key}: required"
    return f"{key}: {message} (got {error.get('input')!r})"


def validate_study_file(raw: Mapping[str, Any], shown: str, given_as: Mapping[str, str] | None = None) -> StudyFile:
    """The validated file; errors name each key (and the option that set it, from ``given_as``)."""
    try:
        return StudyFile.model_validate(raw)
    except ValidationError as exc:
        seen: dict[str, None] = {}
        for error in exc.errors():
            seen.setdefault(_describe(error, given_as or {}), None)
        raise ConfigError(f"{shown}: " + f"\n{shown}: ".join(seen)) from None


def _prefixed(shown: str, exc: Exception) -> ConfigError:
    return ConfigError(f"{shown}: {exc}")


def _data(file: StudyFile, base: Path, synthetic: Mapping[str, Any]) -> SyntheticConfig | FilesConfig:
    given = {k: v for k, v in synthetic.items() if v is not None}
    if isinstance(file.data, str):
        if file.data not in SYNTHETIC:
            raise DataError(
                f"data: {file.data!r} is not valid; expected synthetic, synthetic3d or a mapping of data fields "
                "(kind: folder2d|drive|msd|nnunet, path: ...)"
            )
        return SyntheticConfig(**{"seed": file.sampler.seed, **given}, spatial_dims=SYNTHETIC[file.data])
    fields = dict(file.data)
    if fields.get("kind", "synthetic") == "synthetic":
        fields = {"seed": file.sampler.seed, **fields, **given}
    config = data_config_from_dict(fields)
    if isinstance(config, FilesConfig):
        config = config.resolved(base)
    return config


def _space(file: StudyFile, base: Path) -> SearchSpace:
    if isinstance(file.space, str):
        text = file.space
        if not (text in ("demo", "widest") or Path(text).is_absolute()):
            candidate = base / text
            text = str(candidate) if candidate.is_file() else text
        return load_space(text)
    return SearchSpace.from_dict(file.space)


def _train(file: StudyFile) -> TrainConfig:
    for key in file.train:
        if key == "epochs":
            raise ConfigError("train.epochs: set it as fidelity.epochs (the fidelity every trial shares)")
        if key == "seed":
            raise ConfigError("train.seed: set it as sampler.seed (one seed for sampling, data and training)")
        if key not in TRAIN_KEYS and key not in INIT_KEYS:
            known = (*TRAIN_KEYS, *INIT_KEYS)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"train.{key}: unknown key{hint}; expected one of: {', '.join(known)}")
    fields = {k: v for k, v in file.train.items() if k not in INIT_KEYS}
    return TrainConfig(**fields, epochs=file.fidelity.epochs, seed=file.sampler.seed)


def _init(file: StudyFile, base: Path) -> InitSource | None:
    """``train.init`` (a state dict, relative to the study file) and ``train.init_map``."""
    path, name_map = file.train.get("init"), file.train.get("init_map", AUTO)
    if path is None:
        if "init_map" in file.train:
            raise ConfigError("train.init_map: set, but train.init (the weights file it maps) is not")
        return None
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"train.init: {path!r} is not valid; expected the path of a PyTorch state dict")
    if name_map not in init_map_choices():
        raise ConfigError(f"train.init_map: {name_map!r} is not valid; expected one of {', '.join(init_map_choices())}")
    resolved = Path(path).expanduser()
    resolved = resolved if resolved.is_absolute() else base / resolved
    if not resolved.is_file():
        raise ConfigError(f"train.init: {resolved} does not exist (a relative path is taken from the study file)")
    return InitSource(path=str(resolved.resolve()), name_map=name_map)


def search_config(
    source: str,
    overrides: Sequence[tuple[str, Any]] = (),
    *,
    synthetic: Mapping[str, Any] | None = None,
    given_as: Mapping[str, str] | None = None,
) -> SearchConfig:
    """The validated ``SearchConfig`` of a preset name or YAML file, with dotted-key ``overrides``
    applied first (so a bad override is reported like a bad key in the file, with the option that set
    it from ``given_as``, e.g. ``{"name": "--study"}``). ``synthetic`` sets fields of built-in data
    (``n_train``, ``n_val``, ``size``) when the data is synthetic."""
    raw, shown, base = read_study_file(source)
    file = validate_study_file(apply_overrides(raw, overrides), shown, given_as)
    try:
        space = _space(file, base)
        trials = file.budget.trials
        if trials is None:
            trials = count_architectures(space) * file.sampler.replicates if file.sampler.name == "grid" else 20
        return SearchConfig(
            study=file.name or unique_study_name(),
            storage=file.storage,
            trials=trials,
            concurrency=file.concurrency,
            cpus_per_trial=file.resources.cpus,
            gpus_per_trial=file.resources.gpus,
            seed=file.sampler.seed,
            data=_data(file, base, synthetic or {}),
            train=_train(file),
            init=_init(file, base),
            space=space,
            out_dir=Path(file.out_dir),
            address=file.address,
            constraints=Constraints(**file.constraints.model_dump()),
            keep_top=None if file.weights.keep == "all" else file.weights.top,
            sampler=file.sampler.name,
            population=file.sampler.population,
            replicates=file.sampler.replicates,
            wall_time_s=file.budget.wall_time,
            grace_period=file.fidelity.grace_period,
            reduction_factor=file.fidelity.reduction_factor,
            promotion=file.fidelity.promotion,
            confirm_members=file.confirm.members,
            confirm_seeds=file.confirm.seeds,
            confirm_min_trials=file.confirm.min_trials,
            baselines=file.baselines,
            objectives=tuple(file.objectives),
        )
    except (ConfigError, SpecError, DataError, StudyError) as exc:
        raise _prefixed(shown, exc) from None
