"""Typed configuration for every stage (pydantic), loaded from YAML with dotted overrides.

Unknown keys, wrong types and impossible values fail before any work starts, with the
key path and a fix in the message.

Modules: ``base`` (ConfigError, the strict section base), ``sections_train`` (data, oof,
train), ``sections_stages`` (score, select, augment, evaluate, pseudo, sweep, ray),
``model`` (Config: every section and the checks across them), ``loading`` (YAML, --set
overrides, merging, validation messages) and ``reference`` (README's configuration reference).
Import from ``hardmine.config``: every public name is re-exported here.
"""
from __future__ import annotations

from hardmine.config.base import ConfigError
from hardmine.config.loading import deep_merge, format_validation_error, from_dict, load_config, parse_overrides
from hardmine.config.model import Config
from hardmine.config.reference import reference_markdown
from hardmine.config.sections_stages import (
    AugmentConfig,
    EvaluateConfig,
    PseudoConfig,
    RayConfig,
    ScoreConfig,
    SelectConfig,
    SweepConfig,
)
from hardmine.config.sections_train import DataConfig, DemoData, FaultInjection, OOFConfig, TfidfConfig, TrainConfig

__all__ = [
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DemoData",
    "EvaluateConfig",
    "FaultInjection",
    "OOFConfig",
    "PseudoConfig",
    "RayConfig",
    "ScoreConfig",
    "SelectConfig",
    "SweepConfig",
    "TfidfConfig",
    "TrainConfig",
    "deep_merge",
    "format_validation_error",
    "from_dict",
    "load_config",
    "parse_overrides",
    "reference_markdown",
]
