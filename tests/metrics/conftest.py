"""Fixtures for the metrics tests: the hand-computed four-bar Score and real POP909 songs."""
from __future__ import annotations

from pathlib import Path

import pytest
import symusic
from metrics_fixtures import FOUR_BARS, build_score

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def four_bars() -> symusic.Score:
    return build_score(FOUR_BARS)


@pytest.fixture(scope="session")
def pop909_root() -> Path:
    root = SHARED_DATA / "pop909"
    if not (root / "001" / "001.mid").is_file():
        pytest.skip(f"POP909 not found at {root} (../shared/data absent): real-data test skipped")
    return root
