"""Pipelines assembled from configs: ``load_config``, ``build_pipe``, the CLI (``python -m pipelines``)."""

from .augmentor import Augmentor
from .build import build_pipe, build_stages
from .config import Config, ConfigError, load_config
from .dataset import AugmentedDataset

__all__ = ["AugmentedDataset", "Augmentor", "Config", "ConfigError", "build_pipe", "build_stages", "load_config"]
