"""Shared fixtures: the shared-data folder (skipped when absent) and small synthetic heads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_skullseg_logger():
    """The CLI configures the "skullseg" logger (own handler, no propagation) whenever
    ``main()`` runs in-process, fixtures included; start every test from the library's
    default (no handler, propagating) so ``caplog`` sees its records."""
    log = logging.getLogger("skullseg")
    log.handlers.clear()
    log.setLevel(logging.NOTSET)
    log.propagate = True
    yield


def shared_data_dir() -> Path | None:
    """``$SKULLSEG_DATA`` or ``<repo>/../shared/data``; None when neither exists."""
    env = os.environ.get("SKULLSEG_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("shared head data not found (set SKULLSEG_DATA or place ../shared/data)")
    return d


@pytest.fixture(scope="session")
def phantom_15():
    """A 1.5 mm synthetic head with known truth (seed 0)."""
    from skullseg.phantom import make_phantom

    return make_phantom(1.5, seed=0)


@pytest.fixture(scope="session")
def phantom_10():
    """A 1 mm synthetic head with known truth (seed 0): the accuracy reference."""
    from skullseg.phantom import make_phantom

    return make_phantom(1.0, seed=0)


@pytest.fixture(scope="session")
def segmented_15(phantom_15):
    """skullseg's result on the 1.5 mm phantom (computed once per session)."""
    from skullseg.pipeline import segment

    return segment(phantom_15.t1)
