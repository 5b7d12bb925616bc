"""The error of a bad config, shared by parsing (:mod:`pipelines.config`) and building (:mod:`pipelines.build`)."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range; ``path`` names it.

    >>> str(ConfigError("augmentation.noise.probability", "must be between 0.0 and 1.0 (1.5 given)"))
    'augmentation.noise.probability: must be between 0.0 and 1.0 (1.5 given)'
    """

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
