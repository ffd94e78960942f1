"""Shared fixtures: tiny configs, models and bundles, built once per session and seeded."""

from __future__ import annotations

from pathlib import Path

import pytest

from accompgen.model.config import ModelConfig


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return ModelConfig.load("tiny")


@pytest.fixture(scope="session")
def tiny_delay_config(tiny_config) -> ModelConfig:
    """The tiny model with the coarse and fine stages in the delay pattern."""
    data = tiny_config.to_dict()
    for stage in ("coarse", "fine"):
        data["stages"][stage]["plan"]["pattern"] = "delay"
    return ModelConfig.from_dict(data)


@pytest.fixture(scope="session")
def tiny_parts(tiny_config):
    from accompgen.model.model_dir import random_parts

    return random_parts(tiny_config, seed=0)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A tiny random-init fp32 bundle written through the real command line."""
    from accompgen.apps.cli import main

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    assert main(["export", "--config", "tiny", "--random-init", "--out", str(out)]) == 0
    return out
