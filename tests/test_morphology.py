"""The fast morphology helpers give exactly what scipy gives."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import ndimage as ndi

from skullseg import morphology
from skullseg.morphology import centre_of_mass, fill_holes


def _blobby(seed: int, shape=(40, 36, 32)) -> np.ndarray:
    """A random mask with holes, cavities open to the border and several components."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.standard_normal(shape), 2.0)
    return field > np.percentile(field, 45)


@pytest.mark.parametrize("seed", range(4))
def test_fill_holes_matches_scipy(seed):
    mask = _blobby(seed)
    mask[10:20, 10:20, 10:20] = True
    mask[14:16, 14:16, 14:16] = False  # one sure hole
    filled = fill_holes(mask)
    assert filled[15, 15, 15]
    np.testing.assert_array_equal(filled, ndi.binary_fill_holes(mask))


def test_fill_holes_keeps_cavities_open_to_the_border():
    mask = np.ones((6, 6, 6), bool)
    mask[2:4, 2:4, :3] = False  # a well from the bottom face
    np.testing.assert_array_equal(fill_holes(mask), mask)


@pytest.mark.parametrize("seed", range(4))
def test_centre_of_mass_matches_scipy(seed):
    mask = _blobby(seed)
    np.testing.assert_allclose(centre_of_mass(mask), ndi.center_of_mass(mask), rtol=0, atol=1e-9)


def test_centre_of_mass_of_nothing_is_nan():
    assert np.isnan(centre_of_mass(np.zeros((3, 3, 3), bool))).all()


def test_morphology_examples_run():
    failed, _ = doctest.testmod(morphology, extraglobs={"np": np})
    assert failed == 0
