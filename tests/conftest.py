"""Shared fixtures: tiny configs and models, seeded so every run sees the same weights."""

from __future__ import annotations

import pytest

from accompgen.config import ModelConfig


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return ModelConfig.load("tiny")
