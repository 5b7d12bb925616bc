"""Pipelines assembled from configs: ``load_config``, ``build_pipe``, the CLI (``python -m pipelines``)."""

from .build import build_pipe, build_stages, check_config
from .config import Config, ConfigError, load_config, parse_config

__all__ = ["Config", "ConfigError", "build_pipe", "build_stages", "check_config", "load_config", "parse_config"]
