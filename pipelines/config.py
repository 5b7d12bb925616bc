"""The pipeline configuration: frozen dataclasses parsed from JSON, every field checked.

The ``augmentation`` block is exactly the schema of the augmentation plan's configuration
example (which loads unchanged, as does its flat ``augmentation_enabled`` switch), plus optional
fields documented on each stage. Its blocks are the settings of the stages registered under
their names (:mod:`streams.stages.registry`); this module declares what is not a stage. Unknown
keys are rejected with a did-you-mean; wrong types and bad values are rejected with the dotted
path of the field (``augmentation.noise.probability``): by the parse (:func:`parse_config`, the
schema and the stage blocks' own checks), then by :func:`pipelines.build.load_config`, which builds
the stages once (:func:`pipelines.build.check_config`), so a bad config never reaches a worker.
The ``audio_augmentation`` block (audio shards, :class:`AudioAugmentationConfig`) holds the audio
stages' own settings dataclasses, which check themselves when parsed.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from typing import Any, Literal, Union

from streams.checks import FieldError
from streams.stages.audio_augment import AudioAugmentStage
from streams.stages.export import ExportStage
from streams.stages.reedit import ReeditStage
from streams.stages.registry import REGISTRY
from streams.stages.stretch import SpeedStage, TempoStage

from .errors import ConfigError

__all__ = [
    "AUDIO_STAGES",
    "AUGMENTATION_ORDER",
    "AudioAugmentationConfig",
    "AudioStageBlock",
    "AugmentationConfig",
    "BatchingConfig",
    "Config",
    "ConfigError",
    "ScheduleConfig",
    "ShuffleConfig",
    "SourceConfig",
    "check_pipe_opt_in",
    "parse_config",
    "pipe_urls",
    "stage_group",
]


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """Per-epoch factor on every augmentation probability (after ``warmup_epochs``).

    ``"linear"`` ramps the factor from ``start_factor`` to ``end_factor`` over ``decay_epochs``:
    a decay (1 → 0.3) or a gradual start (0.2 → 1), the plan's two risk mitigations.
    """

    kind: Literal["constant", "linear"] = "constant"
    decay_epochs: int = 1
    start_factor: float = 1.0
    end_factor: float = 1.0


AUGMENTATION_ORDER = ("crop", "concatenation", "chunk_shuffle", "gain", "channel_dropout", "spec_augment", "noise")
"""The ``augmentation`` blocks, in pipe order (:mod:`pipelines.build` says why): each is the
settings dataclass of the stage registered under that name (:mod:`streams.stages.registry`)."""


def stage_group(name: str, fields: list[tuple[str, type, Any]], blocks: tuple[str, ...], doc: str) -> type:
    """A frozen dataclass ``name`` of ``fields`` (name, type, default), then one field per block of
    ``blocks``: the settings class registered for it, defaulting to its defaults."""
    settings = {block: REGISTRY[block].settings_class for block in blocks}
    fields = fields + [(block, cls, dataclasses.field(default=cls())) for block, cls in settings.items()]
    return dataclasses.make_dataclass(name, fields, frozen=True, namespace={"__doc__": doc, "__module__": __name__})


AugmentationConfig = stage_group("AugmentationConfig", [
    ("enabled", bool, False), ("warmup_epochs", int, 0), ("schedule", ScheduleConfig, ScheduleConfig())],
    AUGMENTATION_ORDER, """The plan's ``augmentation`` block: ``enabled``, ``warmup_epochs``, ``schedule``,
    then the block of each stage in :data:`AUGMENTATION_ORDER` (``noise``: a ``NoiseSettings``).""")

# --- the audio_augmentation block (audio shards only) ------------------------------------------

AUDIO_STAGES: dict[str, type[AudioAugmentStage]] = {
    "reedit": ReeditStage, "export": ExportStage, "speed": SpeedStage, "tempo": TempoStage}
"""The audio stages by block name, in pipe order: a new edit, then the export chain on it, then speed
and tempo changes (of the edit, or the raw with ``target: "raw"``)."""


@dataclasses.dataclass(frozen=True)
class AudioStageBlock:
    """One audio stage's block: ``enabled``, then the fields of the stage's frozen settings dataclass
    (:class:`~streams.stages.reedit.ReeditSettings`, ...), held in ``settings``; ``[low, high]`` lists are
    pairs."""

    enabled: bool
    settings: Any


def _audio_stage_block(name: str, data: Any, path: str) -> AudioStageBlock:
    settings_class = AUDIO_STAGES[name].settings_class
    fields = [f.name for f in dataclasses.fields(settings_class) if f.init]
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected an object with keys {['enabled', *fields]}, got {json.dumps(data)}")
    _reject_unknown(data, ["enabled", *fields], path)
    enabled = _parse_value(bool, data.get("enabled", False), f"{path}.enabled")
    values = {key: tuple(value) if isinstance(value, list) else value
              for key, value in data.items() if key != "enabled"}
    try:
        return AudioStageBlock(enabled, settings_class(**values))
    except FieldError as err:
        raise ConfigError(f"{path}.{err.field}" if err.field in fields else path, str(err)) from err
    except (TypeError, ValueError) as err:
        raise ConfigError(path, str(err)) from err


@dataclasses.dataclass(frozen=True)
class AudioAugmentationConfig:
    """Audio stages on audio shards (``source.store: "audio"``), before the mels are made.

    ``enabled`` switches the block; each stage block (``reedit``, ``export``, ``speed``, ``tempo``, see
    :data:`AUDIO_STAGES`) has its own ``enabled`` (default false) and its settings' fields, validated by
    the settings dataclass with errors at the field's path (``audio_augmentation.speed.factor``).
    """

    enabled: bool = False
    stages: tuple[tuple[str, AudioStageBlock], ...] = ()

    def block(self, name: str) -> AudioStageBlock:
        """The block of stage ``name`` (its defaults, disabled, when the config leaves it out)."""
        return dict(self.stages).get(name) or AudioStageBlock(False, AUDIO_STAGES[name].settings_class())

    @classmethod
    def from_json(cls, data: Any, path: str) -> AudioAugmentationConfig:
        names = ["enabled", *AUDIO_STAGES]
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected an object with keys {names}, got {json.dumps(data)}")
        _reject_unknown(data, names, path)
        stages = tuple((name, _audio_stage_block(name, data[name], f"{path}.{name}")) for name in AUDIO_STAGES
                       if name in data)
        return cls(_parse_value(bool, data.get("enabled", False), f"{path}.enabled"), stages)


# --- the other blocks ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where samples come from and how bad ones are handled.

    ``urls``: a brace pattern, a glob of local files, or a list of them; relative local paths
    are relative to the config file. ``on_error``: ``"raise"`` stops at the first bad sample or
    shard, ``"skip"`` drops and counts them. Reading modes (see :mod:`streams.reading.epoch_plan`):
    by default each sample is read once per epoch, and ranks may differ in length.
    ``equal_steps``: ``"repeat"`` or ``"drop"`` makes every rank yield the same number of
    samples per epoch (``ceil`` or ``floor`` of total / ranks; fewer samples than there are
    ranks are repeated or dropped), needed by DDP loops that sync every step.
    ``resampled``: draw shards with replacement, ``epoch_samples`` per rank and epoch (null:
    endless). ``epoch_samples`` with ``equal_steps`` sets the samples per rank explicitly.
    ``sample_counts``: path or URL of the ``index.json`` giving each shard's sample count
    (relative to the config file); null reads the ``index.json`` next to local shards, as
    written by ``pack``. Equal steps needs the counts; resampling uses them to draw shards in
    proportion to their size.
    ``allow_pipe``: ``pipe:CMD`` URLs (in ``urls`` or ``sample_counts``) run ``CMD`` in a shell
    when the pipe reads; a config may use them only with ``allow_pipe: true``, which says the
    config is trusted like a script. Nothing is run while a config is loaded or validated.
    ``max_array_mb`` and ``max_meta_mb``: the largest ``.npy`` (and ``.flac``) and ``.json`` member read
    into memory (larger ones are bad samples, never read). ``stall_timeout``: seconds a ``pipe:``
    read may wait for data before its shard fails as stalled (null: forever).
    ``store``: ``"mel"`` (mel shards) or ``"audio"`` (``pack-audio --store audio``: the recordings are
    decoded in the workers, the ``audio_augmentation`` stages run, then mels are made with the settings
    stored in the shard, by ``mel_backend`` ``"librosa"`` or ``"torch"``, see ``docs/audio-shards.md``).
    """

    urls: str | list[str] = ""
    shuffle_shards: bool = True
    mel_dtype: Literal["float32", "float16"] = "float32"
    on_error: Literal["raise", "skip"] = "raise"
    resampled: bool = False
    epoch_samples: int | None = None
    equal_steps: Literal["repeat", "drop"] | None = None
    sample_counts: str | None = None
    allow_pipe: bool = False
    max_array_mb: float = 1024.0
    max_meta_mb: float = 4.0
    stall_timeout: float | None = None
    store: Literal["mel", "audio"] = "mel"
    mel_backend: Literal["librosa", "torch"] = "librosa"


@dataclasses.dataclass(frozen=True)
class ShuffleConfig:
    """Sample shuffle buffer; 0 disables it."""

    buffer_size: int = 0


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """``batch_size`` fixed batches, or ``max_frames`` padded frames per batch (bucketed by length).

    Both null: the pipe yields single samples. ``drop_last`` (default false) goes with
    ``batch_size``; ``bucket_buffer`` (default 64 samples) and ``max_batch_size`` go with
    ``max_frames``; giving one with the other mode is an error rather than silently ignored.
    """

    batch_size: int | None = None
    max_frames: int | None = None
    bucket_buffer: int | None = None
    max_batch_size: int | None = None
    drop_last: bool | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole pipeline. ``augmentation_enabled`` is the plan's flat switch for ``augmentation.enabled``."""

    seed: int = 0
    source: SourceConfig = SourceConfig()
    augmentation: AugmentationConfig = AugmentationConfig()
    augmentation_enabled: bool | None = None
    audio_augmentation: AudioAugmentationConfig = AudioAugmentationConfig()
    shuffle: ShuffleConfig = ShuffleConfig()
    batching: BatchingConfig = BatchingConfig()

    @property
    def augment(self) -> bool:
        """Whether augmentation runs: the flat switch wins when given."""
        return self.augmentation_enabled if self.augmentation_enabled is not None else self.augmentation.enabled


# --- parsing ---------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(json.dumps(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is tuple:
        return f"a list of {len(typing.get_args(tp))} ({', '.join(map(_type_name, typing.get_args(tp)))})"
    if dataclasses.is_dataclass(tp):
        return "an object"
    return _SCALARS[tp][0] if tp in _SCALARS else str(tp)


_SCALARS = {  # a scalar type -> its name in messages, and whether a JSON value is one
    type(None): ("null", lambda value: value is None),
    bool: ("true or false", lambda value: isinstance(value, bool)),
    int: ("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    float: ("a number", lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)),
    str: ("a string", lambda value: isinstance(value, str)),
}


def _parse_value(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _parse_block(tp, value, path)
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) is type(typing.get_args(tp)[0]):
            return value
    elif origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _parse_value(option, value, path)
            except ConfigError:
                continue
    elif origin is list:
        if isinstance(value, list):
            return [_parse_value(typing.get_args(tp)[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    elif origin is tuple:
        if isinstance(value, list) and len(value) == len(typing.get_args(tp)):
            return tuple(_parse_value(t, v, f"{path}[{i}]") for i, (t, v) in enumerate(zip(typing.get_args(tp), value)))
    elif tp in _SCALARS and _SCALARS[tp][1](value):
        return float(value) if tp is float else value
    raise ConfigError(path, f"expected {_type_name(tp)}, got {json.dumps(value)}")


def _reject_unknown(data: dict, names: list[str], path: str) -> None:
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{path}.{key}" if path else key,
                              f"unknown key; {hint}known keys here: {', '.join(names)}")


def _parse_block(cls: type, data: Any, path: str) -> Any:
    if hasattr(cls, "from_json"):  # a block that parses itself (audio_augmentation)
        return cls.from_json(data, path)
    names = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected an object with keys {names}, got {json.dumps(data)}")
    hints = typing.get_type_hints(cls)
    _reject_unknown(data, names, path)
    values = {name: _parse_value(hints[name], data[name], f"{path}.{name}" if path else name)
              for name in names if name in data}
    try:
        return cls(**values)
    except FieldError as err:  # a stage's settings check themselves: the error names the field
        raise ConfigError(f"{path}.{err.field}" if err.field in names else path, str(err)) from err


def _resolve_urls(urls: str | list[str], base_dir: str) -> str | list[str]:
    def resolve(url: str) -> str:
        if url.startswith("file:"):
            path = url[len("file:"):]
            return url if os.path.isabs(path) else "file:" + os.path.join(base_dir, path)
        is_local = ":" not in url.split("/", 1)[0]
        return os.path.join(base_dir, url) if is_local and not os.path.isabs(url) else url

    if isinstance(urls, str):
        return "::".join(resolve(u) for u in urls.split("::"))
    return [resolve(u) for u in urls]


def pipe_urls(urls: str | list[str] | None) -> list[str]:
    """The ``pipe:`` URLs among ``urls``, brace patterns expanded (string work only: nothing is opened)."""
    from webdataset.shardlists import expand_urls

    found = []
    for pattern in ([urls] if isinstance(urls, str) else list(urls)) if urls else []:
        try:
            expanded = expand_urls(pattern)
        except Exception:  # an unbalanced pattern: validation reports it; check the text as written
            expanded = pattern.split("::")
        found += [url for url in expanded if url.strip().startswith("pipe:")]
    return found


def check_pipe_opt_in(source: SourceConfig) -> None:
    """Raise :class:`ConfigError` if ``source`` holds a ``pipe:`` URL without ``allow_pipe``.

    A ``pipe:CMD`` URL makes the reader run ``CMD`` in a shell, so a config that holds one is a
    script: it needs ``source.allow_pipe: true``. Only the strings are looked at; nothing runs.
    """
    if source.allow_pipe:
        return
    for field in ("urls", "sample_counts"):
        found = pipe_urls(getattr(source, field))
        if found:
            raise ConfigError(f"source.{field}", f"{found[0]!r} runs a shell command when read; set "
                                                 "source.allow_pipe to true if you trust this config as you would a "
                                                 "script, or give a path or http(s) URL")


def parse_config(source: str | os.PathLike | dict[str, Any]) -> Config:
    """Parse a config from a JSON file path or a dict, with the schema's checks (types, unknown
    keys, shards given) and the stage blocks' own (their settings check themselves); raise
    :class:`ConfigError` naming the field. The other values (source, schedule, batching) are
    range-checked by :func:`~pipelines.build.load_config`.

    Relative local shard paths are resolved against the config file's folder (against the
    working directory for a dict).
    """
    if isinstance(source, dict):
        data, base_dir = source, os.getcwd()
    else:
        path = os.fspath(source)
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError as err:
            raise ConfigError("", f"config file {path} does not exist") from err
        except json.JSONDecodeError as err:
            raise ConfigError("", f"config file {path} is not valid JSON: {err}") from err
        base_dir = os.path.dirname(os.path.abspath(path))
    config = _parse_block(Config, data, "")
    src = config.source
    check_pipe_opt_in(src)
    if not src.urls:
        raise ConfigError("source.urls", "no shards given; set it to a shard pattern like "
                                         "\"shards/train-{000000..000009}.tar\"")
    counts = _resolve_urls(src.sample_counts, base_dir) if src.sample_counts else src.sample_counts
    return dataclasses.replace(config, source=dataclasses.replace(src, urls=_resolve_urls(src.urls, base_dir),
                                                                  sample_counts=counts))
