"""``python -m pipelines validate``: train every arm of a protocol over seeds, score, write outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import torch

from streams import Pipe

from ..config import Config, ConfigError, load_config
from .baseline import nearest_neighbour_embedder
from .evaluate import evaluate_samples
from .perturb import make_conditions
from .protocols import protocol_arms
from .report import build_results, write_outputs
from .runner import run_specs
from .train import RunSpec, TrainSettings, load_samples

__all__ = ["DEFAULT_CONFIG", "default_device", "load_validation_config", "run_validation", "summary_line",
           "training_recordings"]

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "full.json")


def default_device() -> str:
    """``"cuda"`` when a GPU is present, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_validation_config(path: str | None, train_urls: str | list[str]) -> Config:
    """The config at ``path`` (default: ``pipelines/configs/full.json``) reading ``train_urls``."""
    path = path or DEFAULT_CONFIG
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"config {path} cannot be read as JSON: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError("", f"config {path} must hold a JSON object")
    data = {**data, "source": {**data.get("source", {}), "urls": train_urls}}
    return load_config(data)


def training_recordings(urls: str | list[str]) -> list[str]:
    """The distinct ``meta["recording"]`` values of the training shards (mels are read and dropped)."""
    names = set()
    for sample in Pipe.from_shards(urls, seed=0, shuffle_shards=False, mel_dtype="float16"):
        if "recording" not in sample.meta:
            raise ValueError(f"sample {sample.key!r} ({sample.url}) has no meta 'recording'; the multiplier "
                             "protocol splits the training set by recording: pack samples with that field")
        names.add(str(sample.meta["recording"]))
    return sorted(names)


def run_validation(config: Config, val_urls: str | list[str], *, protocol: str = "quick", seeds: int = 3,
                   settings: TrainSettings | None = None, out_dir: str = "validate-out", jobs: int = 1,
                   progress: bool = True) -> tuple[dict, dict[str, str]]:
    """Run ``protocol`` (see :mod:`.protocols`); return the results and the written files' paths."""
    settings = settings or TrainSettings()
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1 ({seeds!r} given)")
    started = time.perf_counter()
    recordings = training_recordings(config.source.urls) if protocol == "multiplier" else []
    arms = protocol_arms(protocol, config, recordings)
    seed_list = [config.seed + i for i in range(seeds)]
    specs = [RunSpec(arm.name, seed, arm.config, settings, val_urls, config, arm.recordings)
             for seed in seed_list for arm in arms]
    val = load_samples(val_urls, settings.eval_frames)
    conditions = make_conditions(val, config)
    baseline = {name: evaluate_samples(nearest_neighbour_embedder, samples, jump_penalty=settings.jump_penalty,
                                       chunk_frames=settings.chunk_frames)
                for name, samples in conditions.items()}
    runs = run_specs(specs, jobs=jobs, progress=progress)
    context = {"settings": dataclasses.asdict(settings), "seeds": seed_list, "train": config.source.urls,
               "val": val_urls, "val_recordings": len(val), "val_edit_frames": sum(s.edit_frames for s in val),
               "train_recordings": len(recordings) or None, "jobs": jobs,
               "cpus": os.cpu_count(), "seconds": time.perf_counter() - started}
    results = build_results(protocol, arms, runs, baseline, **context)
    return results, write_outputs(results, out_dir)


def summary_line(results: dict, paths: dict[str, str]) -> str:
    """The closing line of the command."""
    verdicts: dict[str, int] = {}
    for c in results["comparisons"]:
        if c["metric"] == "exact" and c["condition"] == "stored":
            verdicts[c["verdict"]] = verdicts.get(c["verdict"], 0) + 1
    said = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    return (f"validate: protocol {results['protocol']}, {len(results['arms'])} arms x {len(results['seeds'])} seeds "
            f"in {results['seconds']:.0f} s; exact vs reference: {said}; wrote {', '.join(paths.values())}")

