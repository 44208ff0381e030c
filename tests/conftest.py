"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets at ../shared/data (skips the test where they are absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present: real-data test skipped")
    return SHARED_DATA


@pytest.fixture(scope="session")
def platform_cache(tmp_path_factory) -> Path:
    """One cache dir (materialised chorales, token caches) shared by the session's runs."""
    return tmp_path_factory.mktemp("musicplat_cache")
