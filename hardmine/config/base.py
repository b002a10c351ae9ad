"""What every config section shares: the error type and the strict section base model."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration problem, with the key path and how to fix it."""


class Section(BaseModel):
    """Base of every config section: unknown keys are refused and assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
