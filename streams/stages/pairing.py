"""Sample concatenation (plan B3): one pure function, and the buffered stage that picks partners.

:func:`concatenate_samples` joins two samples end to end: raw after raw, edit after edit, the
second sample's pointers shifted by the first one's raw length, so every edit frame still points
at the raw frame that holds its content.

:class:`PairStage` (``pipe.pair(...)``) holds a small buffer of samples and, with the configured
probability, emits two of them as one concatenated sample. Every input sample leaves exactly once,
alone or inside one pair; the buffer is flushed at the end of the stream. Partner choices come
from ``order_rng(seed, epoch, stage, rank, worker)``; on resume the buffered samples are read
again by origin, and a pair (origin ``("pair", origin_a, origin_b)``) is rebuilt from its parts.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..checks import FieldError, check_int, check_limit
from ..origin import Origin, pair_origin, parse_origin
from ..pipe import Node, StreamContext
from ..sample import Sample
from ..schedule import ProbabilitySchedule
from .buffered import BufferedNode, held_origin
from .registry import SettingsStage, StageSettings, register_stage

__all__ = ["PAIR_BY_POLICIES", "PairSettings", "PairStage", "choose_partner", "concatenate_samples",
           "lead_pairing_chance"]

PAIR_BY_POLICIES = ("length", "random")
"""The built-in ``pair_by`` policies; any other string names a metadata field."""


def concatenate_samples(a: Sample, b: Sample, *, stage: str = "pair") -> Sample:
    """One sample made of ``a`` followed by ``b``; neither input is changed.

    ``raw_mel`` is ``(n_mels, Ta_raw + Tb_raw)``, ``edit_mel`` is ``(n_mels, Ta_edit + Tb_edit)``
    (same dtype as the inputs) and ``pointers`` is int64 ``(Ta_edit + Tb_edit,)``: ``a``'s pointers
    unchanged, then ``b``'s plus ``Ta_raw``. So if ``edit == raw[:, pointers]`` held in both
    inputs, it holds exactly in the result.

    The key is ``"a.key+b.key"``; ``origin`` is ``("pair", a.origin, b.origin)``; ``url`` is the
    shared shard when both came from the same one, else ``None``. ``meta`` is
    ``{"parts": [a.meta, b.meta], "augmentations": [record]}`` where the record (named ``stage``)
    lists both keys and urls and where the parts meet: ``raw_split = Ta_raw`` and
    ``edit_split = Ta_edit``.

    Raises ``ValueError`` if the samples differ in ``n_mels`` or mel dtype.

    Examples:
        >>> a = Sample("a", torch.zeros(1, 3), torch.zeros(1, 2), torch.tensor([2, 0]), origin=("memory", 0))
        >>> b = Sample("b", torch.ones(1, 2), torch.ones(1, 1), torch.tensor([1]), origin=("memory", 1))
        >>> ab = concatenate_samples(a, b)
        >>> ab.key, ab.raw_frames, ab.edit_frames, ab.pointers.tolist()
        ('a+b', 5, 3, [2, 0, 4])
        >>> ab.origin, ab.meta["augmentations"][0]["raw_split"]
        (('pair', ('memory', 0), ('memory', 1)), 3)
    """
    if a.n_mels != b.n_mels:
        raise ValueError(f"cannot concatenate {a.key!r} ({a.n_mels} mel bins) and {b.key!r} ({b.n_mels} mel bins); "
                         "pair only samples made with the same mel filterbank")
    if a.raw_mel.dtype != b.raw_mel.dtype:
        raise ValueError(f"cannot concatenate {a.key!r} ({a.raw_mel.dtype}) and {b.key!r} ({b.raw_mel.dtype}); "
                         "read both with the same mel_dtype")
    raw_mel = torch.cat([a.raw_mel, b.raw_mel], dim=1)
    edit_mel = torch.cat([a.edit_mel, b.edit_mel], dim=1)
    pointers = torch.cat([a.pointers.to(torch.int64), b.pointers.to(torch.int64) + a.raw_frames])
    pair = Sample(
        key=f"{a.key}+{b.key}",
        raw_mel=raw_mel,
        edit_mel=edit_mel,
        pointers=pointers,
        meta={"parts": [a.meta, b.meta], "augmentations": []},
        url=a.url if a.url == b.url else None,
        origin=pair_origin(a.origin, b.origin),
    )
    return pair.with_record(stage, keys=[a.key, b.key], urls=[a.url, b.url],
                            raw_split=a.raw_frames, edit_split=a.edit_frames)


def lead_pairing_chance(probability: float) -> float:
    """The chance the oldest buffered sample takes a partner, for a target paired ``probability``.

    A leaving sample takes a partner with chance ``q``; then each leave moves ``1 + q`` samples on
    average, ``2q`` of them inside a pair, so the fraction of samples paired is ``2q / (1 + q)``.
    Solving for ``q`` gives ``p / (2 - p)``, which is also the share of emitted items that are pairs.

    >>> lead_pairing_chance(0.0), lead_pairing_chance(1.0), round(lead_pairing_chance(0.2), 4)
    (0.0, 1.0, 0.1111)
    """
    return probability / (2.0 - probability)


_MISSING = object()


class PairSettings(StageSettings):
    """The ``concatenation`` block (B3), ``probability`` as in the plan; :class:`PairStage` documents the fields."""

    probability: float = 0.2
    buffer_size: int = 16
    max_raw_frames: int | None = None
    max_edit_frames: int | None = None
    pair_by: str = "random"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.buffer_size, "buffer_size", minimum=2,
                  hint="a sample needs at least one other buffered sample to pair with")
        check_limit(self.max_raw_frames, "max_raw_frames")
        check_limit(self.max_edit_frames, "max_edit_frames")
        if not isinstance(self.pair_by, str) or not self.pair_by:
            raise FieldError("pair_by", f"pair_by must be 'random', 'length' or a metadata field name "
                                        f"({self.pair_by!r} given)")


def choose_partner(lead: Sample, candidates: Sequence[Sample], stage: PairStage,
                   rng: np.random.Generator) -> tuple[int | None, str | None]:
    """Which of ``candidates`` ``lead`` pairs with by ``stage``'s ``pair_by`` and limits (:class:`PairStage`;
    ``"length"`` ties go to the first): ``(index, None)``, or ``(None, "no_partner")`` (none matches
    ``pair_by``) or ``(None, "refused_limit")`` (none fits). The pairing node and
    :class:`pipelines.dataset.AugmentedDataset` both choose with it.

    >>> s = [Sample(key, torch.zeros(1, n), torch.zeros(1, 1), torch.tensor([0])) for key, n in zip("abc", (5, 9, 4))]
    >>> choose_partner(s[0], s[1:], PairStage(pair_by="length"), np.random.default_rng(0))
    (1, None)
    """
    if stage.pair_by in PAIR_BY_POLICIES:
        matching: Sequence[int] = range(len(candidates))
    else:
        tag = lead.meta.get(stage.pair_by, _MISSING)
        matching = [] if tag is _MISSING else [
            i for i, other in enumerate(candidates) if other.meta.get(stage.pair_by, _MISSING) == tag]
    if not matching:
        return None, "no_partner"
    fitting = [i for i in matching if stage.fits(lead.raw_frames + candidates[i].raw_frames,
                                                 lead.edit_frames + candidates[i].edit_frames)]
    if not fitting:
        return None, "refused_limit"
    if stage.pair_by == "length":
        length = lead.raw_frames + lead.edit_frames
        return min(fitting, key=lambda i: abs(candidates[i].raw_frames + candidates[i].edit_frames - length)), None
    return fitting[int(rng.integers(len(fitting)))], None


class _PairNode(BufferedNode):
    counters = ("in", "pairs", "singles", "over_limit", "refused_limit", "no_partner")

    def __init__(self, upstream: Node, stage: PairStage, ctx: StreamContext, state: dict[str, Any] | None):
        self.lead_chance = lead_pairing_chance(stage.probability_at(ctx.epoch))
        self.buffer: list[Sample] = []
        self.field_checked = False  # whether pair_by's field was looked for (pairing by a metadata field)
        super().__init__(upstream, stage, ctx, state)
        self.name = ctx.stage or stage.name

    def __next__(self) -> Sample:
        self.counts["in"] += self.fill(self.buffer, self.stage.buffer_size)
        if not self.buffer:
            raise StopIteration
        lead = self.buffer.pop(0)
        index = self._partner_index(lead)
        if index is None:
            self.counts["singles"] += 1
            return lead
        self.counts["pairs"] += 1
        return concatenate_samples(lead, self.buffer.pop(index), stage=self.name)

    def _partner_index(self, lead: Sample) -> int | None:
        """The buffer index of ``lead``'s partner, or ``None`` if it leaves alone (counted why)."""
        stage = self.stage
        if not stage.fits(lead.raw_frames, lead.edit_frames):
            self.counts["over_limit"] += 1
            return None
        if self.lead_chance <= 0.0 or (self.lead_chance < 1.0 and self.rng.random() >= self.lead_chance):
            return None
        if stage.pair_by not in PAIR_BY_POLICIES and not self.field_checked:
            if stage.pair_by not in lead.meta:
                self._warn_missing_field(lead)
            self.field_checked = True  # the first sample to look for a partner tells whether the field exists
        index, why = choose_partner(lead, self.buffer, stage, self.rng)
        if why is not None:
            self.counts[why] += 1
        return index

    def _warn_missing_field(self, lead: Sample) -> None:
        """Warn when neither ``lead``, the first sample of the pass to look for a partner, nor any
        buffered sample has the ``pair_by`` field: a misspelt field pairs nothing."""
        if any(self.stage.pair_by in other.meta for other in self.buffer):
            return
        fields = ", ".join(sorted(k for k in lead.meta if k not in ("augmentations", "parts"))) or "none"
        warnings.warn(f"pairing by meta field {self.stage.pair_by!r}: neither sample {lead.key!r} (its fields: "
                      f"{fields}) nor the {len(self.buffer)} other buffered samples have it, so none is paired; "
                      "check the spelling of pair_by", UserWarning, stacklevel=2)

    def replay(self, origins: list[Origin]) -> Iterator[Sample]:
        parsed = [parse_origin(origin) for origin in origins]
        halves = [half for origin in parsed for half in (origin if origin.is_pair else (origin,))]
        replayed = iter(self.upstream.replay([half.stored() for half in halves]))
        for origin in parsed:
            if origin.is_pair:
                first = next(replayed)
                yield concatenate_samples(first, next(replayed), stage=self.name)
            else:
                yield next(replayed)

    def held(self) -> list[Origin]:
        return [held_origin(sample, "pair") for sample in self.buffer]

    def restore(self, held: list[Origin]) -> None:
        self.buffer = self.replayed(held)

    def stats(self) -> dict[str, Any]:
        out = 2 * self.counts["pairs"] + self.counts["singles"]
        paired_fraction = 2 * self.counts["pairs"] / out if out else 0.0
        return {**self.counts, "paired_fraction": paired_fraction, "buffered": len(self.buffer)}


@register_stage("concatenation", PairSettings, method="pair")
class PairStage(SettingsStage):
    """Concatenate buffered samples in pairs (see :func:`concatenate_samples`).

    Args:
        probability: the fraction of samples that leave this stage inside a pair, when partners
            are available (0.2: about 20% of samples are halves of pairs, so about 11% of emitted
            items are pairs; see :func:`lead_pairing_chance`). 0 passes every sample alone, 1
            pairs every sample that has a partner. Multiplied by ``schedule``'s factor per epoch.
        buffer_size: samples held (>= 2). The oldest buffered sample leaves first and takes its
            partner from the other ``buffer_size - 1``; memory is bounded by the buffer.
        max_raw_frames, max_edit_frames: a pair whose raw (edit) frames would exceed the limit is
            not made (``None``: no limit). A sample already over a limit passes alone.
        pair_by: how partners are chosen among the buffered samples that fit the limits:
            ``"random"`` (uniform); ``"length"`` (closest ``raw_frames + edit_frames`` to the leaving
            sample, ties to the oldest, so the two halves have comparable durations; this alone
            does not lower batch padding, ``batch_by_frames`` does); or any other string, a
            metadata field: partners must hold an equal value there, and a sample without the
            field, or with no buffered sample sharing its value, passes alone. ``"random"`` and
            ``"length"`` are reserved, so they cannot name a field.

    The leaving sample comes first in the pair, so pairs keep stream order. Samples leave in
    arrival order (each waits at most ``buffer_size`` leaves), and the buffer drains with the same
    rule at the end of the stream. Stats: ``in``, ``pairs``, ``singles``, ``over_limit`` (samples
    alone over a limit), ``refused_limit`` (a partner was wanted and some matched ``pair_by`` but
    none fitted the limits), ``no_partner`` (a partner was wanted but none matched), and
    ``paired_fraction`` (``2 * pairs / (2 * pairs + singles)``).

    Replay rebuilds any ``("pair", a, b)`` origin from ``a`` and ``b``, so put one pair stage per
    pipe: with two, a pair made by the first is rebuilt by the second under its stage name.
    """

    name = "pair"
    node_class = _PairNode

    def __init__(self, probability: float = PairSettings.probability, *,
                 schedule: ProbabilitySchedule | None = None, **fields: Any):
        super().__init__(probability=probability, schedule=schedule, **fields)

    def fits(self, raw_frames: int, edit_frames: int) -> bool:
        """Whether a sample (or pair) of this many frames is within the limits."""
        return ((self.max_raw_frames is None or raw_frames <= self.max_raw_frames)
                and (self.max_edit_frames is None or edit_frames <= self.max_edit_frames))
