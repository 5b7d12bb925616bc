"""The arms of each protocol, derived from one config, and the effective data multiplier.

Arms differ only in their augmentation block (``dataclasses.replace`` on the config):

- ``none``: every augmentation off;
- ``all``: the config's augmentations as configured;
- ``without_<stage>``: ``all`` with one enabled stage turned off (leave-one-out: augmentations do
  not simply add up, so removing one says more than adding one);
- ``none@<k>`` / ``all@<k>``: the same on a subset of ``k`` training recordings (the multiplier).

Protocols: ``quick`` (none, all), ``ablation`` (none, all, every without_<stage>), ``multiplier``
(none on nested subsets of about n/4, n/2 and n recordings, all on the smaller ones), ``audio``
(none; ``mel``, the config's augmentations on mel shards, which is ``all``; ``audio``, the audio
stages of the config's ``audio_augmentation`` block on audio shards of the same recordings and no
mel-domain augmentation; ``both``; each against none). The
multiplier (Geiping et al., 2022, "How Much Data Are Augmentations Worth?") of ``all@k`` is
``N_eq / k``, where ``N_eq`` is the subset size at which ``none`` reaches the augmented score,
interpolated linearly in ``log n`` between the measured sizes, never extrapolated: past the
largest size it is reported as "more than" ``n / k``, below the smallest as "less than".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from streams.seeding import derive_seed

from ..config import AudioAugmentationConfig, Config

__all__ = ["AUGMENTATION_BLOCKS", "Arm", "PROTOCOLS", "audio_arm_config", "enabled_audio_stages", "enabled_blocks",
           "holdout_split", "multiplier", "protocol_arms", "subset_sizes"]

PROTOCOLS = ("quick", "ablation", "multiplier", "audio")
AUGMENTATION_BLOCKS = ("noise", "gain", "channel_dropout", "spec_augment", "crop", "chunk_shuffle", "concatenation")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm: its ``name``, ``config``, training ``recordings`` subset (None: all), the arm it
    is compared against (None: it is a reference) and, in an ablation, the augmentation block it
    ``leaves_out`` of ``all`` (what that block adds is ``all`` minus this arm)."""

    name: str
    config: Config
    recordings: tuple[str, ...] | None = None
    against: str | None = None
    leaves_out: str | None = None


def enabled_blocks(config: Config) -> list[str]:
    """The augmentation blocks ``config`` runs, in plan order."""
    if not config.augment:
        return []
    return [name for name in AUGMENTATION_BLOCKS if getattr(config.augmentation, name).enabled]


def _with_augmentation(config: Config, on: bool, disabled: Sequence[str] = ()) -> Config:
    aug = config.augmentation
    blocks = {name: dataclasses.replace(getattr(aug, name), enabled=False) for name in disabled}
    return dataclasses.replace(config, augmentation_enabled=on, audio_augmentation=AudioAugmentationConfig(),
                               augmentation=dataclasses.replace(aug, enabled=on, **blocks))


def audio_arm_config(config: Config, audio_urls: str | list[str], audio: AudioAugmentationConfig,
                     mel_augmentation: bool) -> Config:
    """``config`` trained from the audio shards ``audio_urls`` (the same recordings as its mel shards)
    with the audio stages of ``audio``, and its mel-domain augmentations when ``mel_augmentation``.

    Mels are made by the ``librosa`` backend, ``pack-audio``'s own: with no audio stage on, the pipe
    gives the numbers of the mel shards (rounded to their float16 in training), so an audio arm
    differs from its mel twin by its audio stages only.
    """
    return dataclasses.replace(
        _with_augmentation(config, mel_augmentation), audio_augmentation=audio,
        source=dataclasses.replace(config.source, urls=audio_urls, store="audio", mel_backend="librosa"))


def enabled_audio_stages(audio: AudioAugmentationConfig) -> list[str]:
    """The audio stages the block ``audio`` runs, in pipe order."""
    return [name for name, block in audio.stages if audio.enabled and block.enabled]


def subset_sizes(recordings: int) -> list[int]:
    """About n/4, n/2 and n recordings (distinct, at least 1).

    >>> subset_sizes(40), subset_sizes(3)
    ([10, 20, 40], [1, 2, 3])
    """
    return sorted({max(1, round(recordings / 4)), max(1, round(recordings / 2)), recordings})


def holdout_split(recordings: Sequence[str], fraction: float, seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split the training recordings into (trained on, held out): ``round(fraction * n)`` of them
    (at least 1, and at least 1 left to train on), drawn with ``seed``; both sorted. The held-out
    ones pick every run's checkpoint (the plateau rule) and jump penalty; the split is the same for
    every arm and seed, so arms stay paired.

    >>> holdout_split(["a", "b", "c", "d", "e", "f", "g", "h"], 0.25, seed=0)[1]
    ('c', 'h')
    """
    names = sorted(set(recordings))
    if len(names) < 2:
        raise ValueError(f"holding training recordings out for the plateau rule needs at least 2 distinct "
                         f"meta 'recording' values in --train; found {len(names)}")
    if not 0 < fraction < 1:
        raise ValueError(f"--holdout must be a fraction between 0 and 1 ({fraction!r} given)")
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    order = np.random.Generator(np.random.PCG64(derive_seed("holdout-split", seed))).permutation(len(names))
    held = {names[i] for i in order[:count]}
    return tuple(n for n in names if n not in held), tuple(sorted(held))


def protocol_arms(protocol: str, config: Config, recordings: Sequence[str] = (),
                  audio_urls: str | list[str] | None = None, audio: AudioAugmentationConfig | None = None) -> list[Arm]:
    """The arms of ``protocol`` for ``config``; ``recordings`` (the training set's, any order) only
    for ``multiplier``, which draws nested subsets from them with the config's seed; ``audio_urls``
    (audio shards of the training recordings) and ``audio`` (the audio stages) only, and always,
    for ``audio``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)} ({protocol!r} given)")
    if (audio_urls is not None) != (protocol == "audio"):
        raise ValueError("--train-audio (audio shards of the training recordings) is needed by --protocol audio "
                         "and only by it" + ("" if audio_urls is None else ": drop it or pass --protocol audio"))
    blocks = enabled_blocks(config)
    if not blocks:
        raise ValueError("the config enables no augmentation (augmentation.enabled and at least one block's "
                         "enabled must be true): there is nothing to compare")
    none, everything = _with_augmentation(config, False), _with_augmentation(config, True)
    if protocol == "audio":
        if audio is None or not enabled_audio_stages(audio):
            raise ValueError("the audio protocol needs audio stages: audio_augmentation.enabled and at least one "
                             "stage's enabled must be true (see pipelines/configs/audio.json)")
        return [Arm("none", none), Arm("mel", everything, against="none"),
                Arm("audio", audio_arm_config(config, audio_urls, audio, False), against="none"),
                Arm("both", audio_arm_config(config, audio_urls, audio, True), against="none")]
    if protocol == "quick":
        return [Arm("none", none), Arm("all", everything, against="none")]
    if protocol == "ablation":
        return [Arm("none", none), Arm("all", everything, against="none"),
                *(Arm(f"without_{name}", _with_augmentation(config, True, [name]), against="none", leaves_out=name)
                  for name in blocks)]
    names = sorted(set(recordings))
    if len(names) < 2:
        raise ValueError(f"the multiplier protocol needs at least 2 training recordings (meta 'recording'); "
                         f"found {len(names)}")
    order = np.random.Generator(np.random.PCG64(derive_seed("multiplier-subsets", config.seed))).permutation(len(names))
    shuffled = [names[i] for i in order]
    sizes = subset_sizes(len(names))
    arms = [Arm(f"none@{k}", none, tuple(shuffled[:k])) for k in sizes]
    arms += [Arm(f"all@{k}", everything, tuple(shuffled[:k]), against=f"none@{k}") for k in sizes[:-1]]
    return arms


def multiplier(sizes: Sequence[int], scores: Sequence[float], size: int, augmented: float) -> dict:
    """The effective data multiplier of an augmented score at ``size`` recordings, from the
    un-augmented ``scores`` at ``sizes`` (ascending); higher scores are better.

    Returns ``{"size", "n_eq", "multiplier", "bound"}``: ``bound`` is null when ``N_eq`` was
    interpolated, ``"more than"`` when the augmented score beats every size (``multiplier`` is then
    largest / size), ``"less than"`` when it is below the smallest (smallest / size).

    >>> round(multiplier([10, 20, 40], [0.5, 0.6, 0.7], 10, 0.65)["multiplier"], 3)
    2.828
    >>> multiplier([10, 20, 40], [0.5, 0.6, 0.7], 10, 0.9)["bound"]
    'more than'
    """
    xs = [math.log(k) for k in sizes]
    if augmented > max(scores):
        return {"size": size, "n_eq": None, "multiplier": sizes[-1] / size, "bound": "more than"}
    if augmented < scores[0]:
        return {"size": size, "n_eq": None, "multiplier": sizes[0] / size, "bound": "less than"}
    for i in range(len(sizes) - 1):
        lo, hi = scores[i], scores[i + 1]
        if min(lo, hi) <= augmented <= max(lo, hi):
            fraction = 0.0 if hi == lo else (augmented - lo) / (hi - lo)
            n_eq = math.exp(xs[i] + fraction * (xs[i + 1] - xs[i]))
            return {"size": size, "n_eq": n_eq, "multiplier": n_eq / size, "bound": None}
    # equal to the smallest score exactly, with a single size
    return {"size": size, "n_eq": float(sizes[0]), "multiplier": sizes[0] / size, "bound": None}
