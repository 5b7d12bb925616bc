"""The pipe: an ``IterableDataset`` built from a chain of stages, resumable and chainable.

A :class:`Pipe` is a description: an ordered tuple of :class:`Stage` settings and a seed. It holds
no iteration state, so it pickles cheaply into DataLoader workers and can be iterated many times.
``iter(pipe)`` opens each stage into a live :class:`Node` (the first node reads the source; each
later node pulls from the one before) inside a :class:`StreamContext` that says which epoch, rank
and worker this pass is.

Every node can report a small state (positions, RNG states, the origins of buffered items) and
is handed it back when it is opened (``Stage.open(upstream, ctx, state)``, as torchdata.nodes'
``reset(initial_state)``); :class:`PipeIterator` nests them, and :meth:`Pipe.state_dict` /
:meth:`Pipe.load_state_dict` expose them to ``torchdata``'s ``StatefulDataLoader``. A node that
buffers items restores its buffer through :meth:`Node.replay`: the source reads the buffered
samples again by origin and every stage between re-applies its (deterministic, keyed) work.

Stages register fluent methods with :func:`pipe_method` and sources their constructors with
:func:`pipe_source`, so scripts read ``Pipe.from_shards(urls).crop(...).shuffle(100).batch(8)``
while this module knows no concrete stage; each call returns a new pipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .checks import FieldError, check_int
from .sample import Origin

__all__ = [
    "FilterStage",
    "MapStage",
    "Node",
    "Pipe",
    "PipeIterator",
    "RepeatedEpochWarning",
    "Stage",
    "StreamContext",
    "pipe_method",
    "pipe_source",
    "shared_epoch_cell",
]

STATE_VERSION = 2  # 2: nodes are handed their state at open (counts under "counts"); version 1 states are refused
_STATE_KEYS = ("version", "epoch", "seed", "layout", "finished", "stages")


@dataclasses.dataclass(frozen=True)
class StreamContext:
    """Where and when one pass over a pipe runs.

    ``rank``/``world_size`` come from ``torch.distributed`` when it is initialised, else from the
    ``RANK``/``WORLD_SIZE`` environment variables (as set by ``torchrun``), else 0/1.
    ``worker``/``num_workers`` come from the DataLoader worker this pass runs in (0/1 outside one).
    ``stage`` is the unique name of the stage a node belongs to (set by the pipe per stage).
    """

    seed: int = 0
    epoch: int = 0
    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1
    stage: str = ""

    @property
    def global_worker(self) -> int:
        """This reader's index among all ``world_size * num_workers`` readers."""
        return self.rank * self.num_workers + self.worker

    @property
    def total_workers(self) -> int:
        return self.world_size * self.num_workers

    @property
    def layout(self) -> dict[str, int]:
        """The part of the context a resumed stream must match."""
        return {"world_size": self.world_size, "num_workers": self.num_workers,
                "rank": self.rank, "worker": self.worker}

    @classmethod
    def detect(cls, seed: int, epoch: int) -> StreamContext:
        """The context of the calling process: distributed rank and DataLoader worker."""
        rank, world_size = _distributed_rank()
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return cls(seed=seed, epoch=epoch, rank=rank, world_size=world_size,
                   worker=worker, num_workers=num_workers)


def _distributed_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    try:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise ValueError(f"RANK and WORLD_SIZE must be integers (got RANK={os.environ.get('RANK')!r}, "
                         f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r})") from err
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size}); check the launcher's environment")
    return rank, world_size


class Node:
    """A live iterator over one pass of a stage, made by :meth:`Stage.open`.

    Subclasses implement ``__next__``; transforming ones also ``replay``. The counters named in
    ``counters`` live in ``self.counts``: they are the node's :meth:`stats` and its state, and a
    node opened with a saved state starts from the saved counts; nodes with more state extend
    ``state_dict`` and read it back in ``__init__``.
    """

    upstream: Node | None = None
    counters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, upstream: Node | None, stage: Stage, ctx: StreamContext, state: dict[str, Any] | None = None):
        self.upstream, self.stage, self.ctx = upstream, stage, ctx
        self.counts = dict.fromkeys(self.counters, 0)
        if state is not None:
            self.counts.update(state.get("counts", {}))

    def __iter__(self) -> Node:
        return self

    def __next__(self) -> Any:
        raise TypeError(f"{type(self).__name__} must define __next__")

    def state_dict(self) -> dict[str, Any]:
        """Small, tensor-free state that this node's stage can open a resumed node from."""
        return {"counts": dict(self.counts)}

    def replay(self, origins: list[Origin]) -> Iterator[Any]:
        """Produce again, in the given order, the items this node emitted with these origins.

        The default is right for nodes that emit upstream items unchanged.
        """
        if self.upstream is None:
            raise TypeError(f"{type(self).__name__} cannot replay items: it has no upstream")
        return self.upstream.replay(origins)

    def stats(self) -> dict[str, Any]:
        """Counters for the run summary (items in, out, fired...)."""
        return dict(self.counts)

    def close(self) -> None:
        """Release files or processes held by this node."""


class Stage:
    """Settings of one step of a pipe. Immutable and picklable; ``open`` makes its live node.

    ``name`` is the stage's default name; a pipe makes names unique (``noise``, ``noise#2``) and
    the name enters the seed of the stage's per-sample randomness.
    """

    name: str = "stage"
    is_source: bool = False
    node_class: ClassVar[type[Node] | None] = None
    """The node class :meth:`open` makes; a stage whose node needs other arguments defines ``open``."""

    def open(self, upstream: Node | None, ctx: StreamContext, state: dict[str, Any] | None = None) -> Node:
        """This stage's live node for one pass, ``node_class(upstream, self, ctx, state)``; ``state`` is
        what the node's ``state_dict`` returned when the pass resumes, else ``None``."""
        if self.node_class is None:
            raise TypeError(f"{type(self).__name__} must define open()")
        return self.node_class(upstream, self, ctx, state)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class _MapNode(Node):
    counters = ("out",)

    def __next__(self) -> Any:
        item = self.stage.fn(next(self.upstream))
        self.counts["out"] += 1
        return item

    def replay(self, origins: list[Origin]) -> Iterator[Any]:
        return map(self.stage.fn, self.upstream.replay(origins))


class MapStage(Stage):
    """Apply ``fn`` to every item. ``fn`` must be deterministic (it is re-run on resume) and
    picklable for DataLoader workers (a module-level function, not a lambda, under spawn)."""

    name = "map"
    node_class = _MapNode

    def __init__(self, fn: Callable[[Any], Any], *, name: str | None = None):
        if not callable(fn):
            raise FieldError("fn", f"map needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "map")


class _FilterNode(Node):
    counters = ("kept", "dropped")

    def __next__(self) -> Any:
        while True:
            item = next(self.upstream)
            keep = self.stage.predicate(item)
            self.counts["kept" if keep else "dropped"] += 1
            if keep:
                return item


class FilterStage(Stage):
    """Keep the items for which ``predicate`` is true; dropped items are counted in the stats."""

    name = "filter"
    node_class = _FilterNode

    def __init__(self, predicate: Callable[[Any], bool], *, name: str | None = None):
        if not callable(predicate):
            raise FieldError("predicate", f"filter needs a callable predicate, got {type(predicate).__name__}")
        self.predicate = predicate
        self.name = name or getattr(predicate, "__name__", "filter")


_S = TypeVar("_S", bound=type)


def pipe_method(method_name: str) -> Callable[[_S], _S]:
    """Class decorator: ``pipe.<method_name>(*args, **kw)`` appends ``cls(*args, **kw)``.

    The method passes exactly the stage's own arguments and returns a new pipe.
    """

    def register(cls: _S) -> _S:
        def method(self: Pipe, *args: Any, **kwargs: Any) -> Pipe:
            return self.then(cls(*args, **kwargs))

        _add_method(method_name, method, f"Append a :class:`{cls.__name__}` stage; returns a new pipe.", cls)
        return cls

    return register


def pipe_source(method_name: str) -> Callable[[_S], _S]:
    """Class decorator for a source stage: ``Pipe.<method_name>(*args, seed=0, **kw)`` is a new pipe
    reading ``cls(*args, **kw)``. Sources register themselves, so the pipe imports none of them."""

    def register(cls: _S) -> _S:
        def method(pipe_cls: type[Pipe], *args: Any, seed: int = 0, **kwargs: Any) -> Pipe:
            return pipe_cls([cls(*args, **kwargs)], seed=seed)

        _add_method(method_name, classmethod(method), f"A pipe reading a :class:`{cls.__name__}`.", cls)
        return cls

    return register


def _add_method(name: str, method: Any, summary: str, cls: type) -> None:
    if hasattr(Pipe, name):
        raise ValueError(f"Pipe already has a method {name!r}; choose another name")
    function = getattr(method, "__func__", method)
    function.__name__ = name
    function.__qualname__ = f"Pipe.{name}"
    function.__doc__ = f"{summary}\n\n{cls.__doc__ or ''}"
    setattr(Pipe, name, method)


def shared_epoch_cell(epoch: int = 0) -> torch.Tensor:
    """An int64 tensor in shared memory: an epoch set in it reaches DataLoader workers, persistent ones too."""
    cell = torch.tensor(epoch, dtype=torch.int64)
    with contextlib.suppress(RuntimeError):  # without shared memory, set_epoch reaches only fresh workers
        cell.share_memory_()
    return cell


PASS_SLOTS = 64
"""DataLoader workers whose passes a pipe remembers (the epoch each last started), for the repeat warning."""


class RepeatedEpochWarning(UserWarning):
    """A pipe with augmentation started a second pass at an epoch it already streamed."""


class Pipe(IterableDataset):
    """A stream of items: a source stage and the stages after it.

    Use it directly (``for s in pipe``), or in ``DataLoader(pipe, batch_size=None)``; shards are
    split across ranks and DataLoader workers by the source. ``set_epoch`` changes shard order,
    shuffling and augmentation, and reaches running workers (also persistent ones) through a
    shared-memory cell.

    Resuming: ``state_dict()`` describes the live pass in this process (or in a worker, as
    ``StatefulDataLoader`` collects it); ``load_state_dict(state)`` makes the next ``iter()`` resume
    there. A state from another layout (world size, workers), seed, pipe or library version is
    refused with a message; ``load_state_dict(state, restart_epoch=True)`` restarts the saved epoch
    from its start instead. Pipes made from one another by fluent calls share one epoch cell.
    ``close()`` (or finishing the pass) releases the live pass's open shards.
    """

    def __init__(self, stages: Iterable[Stage], *, seed: int = 0, _epoch_cell: torch.Tensor | None = None):
        stages = tuple(stages)
        if not stages or not stages[0].is_source:
            raise ValueError("a pipe starts with a source stage; use Pipe.from_shards(...) or Pipe.from_samples(...)")
        for stage in stages[1:]:
            if stage.is_source:
                raise ValueError(f"{stage!r} is a source and can only start a pipe")
        self.stages = stages
        self.seed = check_int(seed, "seed", minimum=None)
        self.stage_names = _unique_names(stage.name for stage in stages)
        self._epoch_cell = _epoch_cell if _epoch_cell is not None else shared_epoch_cell(0)
        self._pass_epochs = torch.full((PASS_SLOTS,), -1, dtype=torch.int64)  # per worker: the epoch of its last pass
        with contextlib.suppress(RuntimeError):
            self._pass_epochs.share_memory_()
        self._pending_state: dict[str, Any] | None = None
        self._restart_epoch = False
        self._live: PipeIterator | None = None

    @property
    def source(self) -> Stage:
        """The source stage (the first one)."""
        return self.stages[0]

    # construction (``from_shards``, ``from_samples``: registered by the sources, see pipe_source) ---
    def then(self, stage: Stage) -> Pipe:
        """A new pipe with ``stage`` appended; this pipe is unchanged."""
        if not isinstance(stage, Stage):
            raise ValueError(f"then() takes a Stage, got {type(stage).__name__}")
        return Pipe([*self.stages, stage], seed=self.seed, _epoch_cell=self._epoch_cell)

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Pipe:
        """Apply ``fn`` to every item (see :class:`MapStage`)."""
        return self.then(MapStage(fn, name=name))

    def filter(self, predicate: Callable[[Any], bool], *, name: str | None = None) -> Pipe:
        """Keep items for which ``predicate`` holds (see :class:`FilterStage`)."""
        return self.then(FilterStage(predicate, name=name))

    # epochs -----------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch_cell.item())

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass (in this process and in DataLoader workers).

        A state loaded for another epoch is dropped: the user has moved on from it.
        """
        check_int(epoch, "epoch")
        if self._pending_state is not None and int(self._pending_state["epoch"]) != epoch:
            self._pending_state = None
        self._epoch_cell.fill_(epoch)

    # iteration --------------------------------------------------------------------------------
    def __iter__(self) -> PipeIterator:
        state, self._pending_state = self._pending_state, None
        epoch = int(state["epoch"]) if state is not None else self.epoch
        ctx = StreamContext.detect(self.seed, epoch)
        if state is not None and (state.get("fresh") or self._restart_epoch):
            state = None  # a state before any item, or the user asked to restart the saved epoch
        self._restart_epoch = False
        if state is not None:
            state = self._checked_state(state, ctx)
        else:
            self._note_pass(ctx)
        if self._live is not None:
            self._live.close()  # a pass abandoned mid-way must not keep its shards open
        self._live = PipeIterator(self, ctx, state)
        return self._live

    def _note_pass(self, ctx: StreamContext) -> None:
        """Warn when this reader starts a second fresh pass at one epoch with augmentation on: it
        would repeat the first pass's order and augmentations (a framework that never calls
        ``set_epoch``). The epochs live in shared memory, so fresh DataLoader workers see them."""
        if ctx.worker >= PASS_SLOTS or not any(getattr(stage, "keyed_augmentation", False) for stage in self.stages):
            return
        if int(self._pass_epochs[ctx.worker]) == ctx.epoch:
            warnings.warn(f"this pipe is streaming epoch {ctx.epoch} again (reader {ctx.worker}), with the same "
                          "order and augmentations as before: call pipe.set_epoch(epoch) before each epoch "
                          "(with Lightning, add the callback pipelines.lightning.SetEpoch(pipe))",
                          RepeatedEpochWarning, stacklevel=3)
        self._pass_epochs[ctx.worker] = ctx.epoch

    def _checked_state(self, state: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
        restart = "or restart the saved epoch with pipe.load_state_dict(state, restart_epoch=True)"
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"pipe state has version {state.get('version')!r}, this library reads "
                             f"version {STATE_VERSION}; {restart}")
        if list(state["stages"]) != list(self.stage_names):
            raise ValueError(f"the saved stream had stages {list(state['stages'])} but this pipe has "
                             f"{list(self.stage_names)}; build the same pipe (same config) to resume")
        if state["seed"] != self.seed:
            raise ValueError(f"the saved stream used seed {state['seed']} but this pipe has seed {self.seed}; "
                             f"resume with the same seed, {restart}")
        if state["layout"] != ctx.layout:
            raise ValueError(f"the saved stream ran with {state['layout']} but this run has {ctx.layout}; resume "
                             f"with the same number of ranks and DataLoader workers, {restart}")
        return state

    def state_dict(self) -> dict[str, Any]:
        """State of the live pass in this process; before any pass, the state of a fresh one."""
        if self._live is not None:
            return self._live.state_dict()
        if self._pending_state is not None:
            return self._pending_state
        return {"version": STATE_VERSION, "epoch": self.epoch, "fresh": True}

    def load_state_dict(self, state: dict[str, Any], *, restart_epoch: bool = False) -> None:
        """Make the next ``iter()`` resume from ``state`` (see the class docstring).

        With ``restart_epoch``, the next pass starts the saved epoch from its beginning instead
        (whatever the layout, seed or version the state was saved with). Outside DataLoader
        workers, the pipe's epoch becomes the saved one; ``set_epoch`` to another epoch drops it.
        """
        if not isinstance(state, dict):
            raise ValueError(f"load_state_dict expects a dict made by Pipe.state_dict() (got {type(state).__name__})")
        required = ("version", "epoch") if state.get("fresh") or restart_epoch else _STATE_KEYS
        missing = [key for key in required if key not in state]
        if missing:
            raise ValueError(f"load_state_dict expects a dict made by Pipe.state_dict() (missing {missing})")
        self._restart_epoch = bool(restart_epoch)
        self._pending_state = state
        if get_worker_info() is None:  # in a worker the cell is shared with the main process: leave it
            self._epoch_cell.fill_(int(state["epoch"]))

    def close(self) -> None:
        """Close the live pass (its open shards and ``pipe:`` commands), if any."""
        if self._live is not None:
            self._live.close()
            self._live = None

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-stage counters of the live pass in this process (empty before the first pass)."""
        return self._live.stats() if self._live is not None else {}

    def skip_report(self) -> Any:
        """Samples the source read, yielded and skipped (``on_error="skip"``) in every pass so far,
        DataLoader workers included: the source's :class:`~streams.reading.skips.SkipReport`."""
        report = getattr(self.source, "skip_report", None)
        if report is None:
            raise TypeError(f"the source {type(self.source).__name__} keeps no skip report (it has no skip_report())")
        return report()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_live"] = None  # a live pass belongs to the process that runs it
        return state

    def __repr__(self) -> str:
        inner = "\n".join(f"  {name}: {stage!r}" for name, stage in zip(self.stage_names, self.stages))
        return f"Pipe(seed={self.seed},\n{inner}\n)"


def _unique_names(names: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return tuple(out)


class PipeIterator(Iterator[Any]):
    """One pass over a pipe: the chain of live nodes, their nested state, and their stats."""

    def __init__(self, pipe: Pipe, ctx: StreamContext, state: dict[str, Any] | None):
        self.ctx = ctx
        self.names = pipe.stage_names
        self.nodes: list[Node] = []
        self.finished = bool(state.get("finished", False)) if state is not None else False
        node: Node | None = None
        try:
            for name, stage in zip(pipe.stage_names, pipe.stages):
                saved = state["stages"][name] if state is not None else None
                node = stage.open(node, dataclasses.replace(ctx, stage=name), saved)
                self.nodes.append(node)
        except BaseException:
            self.close()  # the nodes already open (a replay that failed, a bad state) release their shards
            raise
        self.last = node

    def __next__(self) -> Any:
        if self.finished:
            raise StopIteration
        try:
            return next(self.last)
        except BaseException as err:  # the end of the pass or an error: either way its shards are released
            self.finished = isinstance(err, StopIteration)
            self.close()
            raise

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "epoch": self.ctx.epoch,
            "seed": self.ctx.seed,
            "layout": self.ctx.layout,
            "finished": self.finished,
            "stages": {name: node.state_dict() for name, node in zip(self.names, self.nodes)},
        }

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: node.stats() for name, node in zip(self.names, self.nodes)}

    def close(self) -> None:
        for node in self.nodes:
            node.close()
