"""The desk raises the collector's youngest threshold (bench/web.py measured why), never lowers it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from coordbot.core.config import Secret, Settings
from coordbot.web import make_web_app
from coordbot.web.collector import YOUNG_THRESHOLD, raise_young_threshold


@pytest.fixture
def thresholds() -> Iterator[None]:
    kept, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*kept)
    (gc.enable if enabled else gc.disable)()


def test_the_desk_raises_the_default_young_threshold(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)  # CPython's default
    make_web_app()  # webhooks only: no desk, nothing changed
    assert gc.get_threshold() == (700, 10, 10)
    make_web_app(engine=create_engine("sqlite://"), settings=Settings(web_secret=Secret("s")))
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


def test_a_higher_threshold_or_a_disabled_collector_is_left_alone(thresholds: None) -> None:
    gc.set_threshold(50_000, 5, 5)
    assert raise_young_threshold() == (50_000, 5, 5)
    gc.set_threshold(700, 10, 10)
    gc.disable()
    assert raise_young_threshold() == (700, 10, 10)
    gc.enable()
    assert raise_young_threshold(1000) == (1000, 10, 10)
