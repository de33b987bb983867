"""Rigid T2-to-T1 registration and the pairing check (:mod:`skullseg.register`)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from skullseg.errors import InputError
from skullseg.io import _itk_affine
from skullseg.phantom import make_phantom, reorient
from skullseg.register import check_pairing, register_rigid, to_sitk
from skullseg.volume import Volume

CENTRE_MM = np.array([0.0, 5.0, -20.0])  # the phantom's field-of-view centre


def _rigid(deg_xyz, shift_mm) -> np.ndarray:
    """World motion: rotation about the head centre, then a shift."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", deg_xyz, degrees=True).as_matrix()
    m[:3, 3] = np.asarray(shift_mm) + CENTRE_MM - m[:3, :3] @ CENTRE_MM
    return m


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(2.0, seed=0)


@pytest.fixture(scope="module")
def moved(phantom):
    """The T2 moved by a known rigid motion (5 deg, a few mm) and stored as LIP."""
    motion = _rigid([5.0, 0.0, 0.0], [3.0, -2.0, 4.0])
    t2 = reorient(Volume(phantom.t2.data, motion @ phantom.t2.affine), "LIP")
    return t2, motion


@pytest.fixture(scope="module")
def registered(phantom, moved):
    return register_rigid(moved[0], phantom.t1)


def test_to_sitk_geometry_round_trips_through_lps():
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("zyx", [20, -10, 5], degrees=True).as_matrix() @ np.diag(
        [0.9, 1.1, 2.5]
    )
    affine[:3, 3] = [12.0, -30.0, 41.0]
    vol = Volume(np.zeros((5, 6, 7), np.float32), affine)
    img = to_sitk(vol)
    assert img.GetSize() == (5, 6, 7)
    back = _itk_affine(img.GetDirection(), img.GetSpacing(), img.GetOrigin())
    assert np.allclose(back, affine, atol=1e-6)


def test_registration_recovers_a_known_motion(phantom, moved, registered):
    resampled, fixed_from_moving, quality = registered
    residual = fixed_from_moving @ moved[1]  # identity when the motion is undone
    assert np.degrees(Rotation.from_matrix(residual[:3, :3]).magnitude()) < 0.5
    assert np.linalg.norm(residual[:3, :3] @ CENTRE_MM + residual[:3, 3] - CENTRE_MM) < 0.5
    assert abs(quality["rotation_deg"] - 5.0) < 0.5
    assert abs(quality["translation_mm"] - np.linalg.norm([3.0, -2.0, 4.0])) < 0.5
    assert quality["overlap"] > 0.95
    assert resampled.same_grid(phantom.t1)
    # back on the T1 grid the moved T2 matches the T2 that never moved
    inside = phantom.labels.data > 0
    r = np.corrcoef(resampled.data[inside], phantom.t2.data[inside])[0, 1]
    assert r > 0.9


def test_registration_is_deterministic(phantom, moved, registered):
    again = register_rigid(moved[0], phantom.t1)
    assert np.array_equal(again[1], registered[1])
    assert again[2]["metric"] == registered[2]["metric"]


def test_matched_pair_passes_the_check(phantom, moved, registered):
    resampled, _, quality = registered
    assert check_pairing(phantom.t1, moved[0], quality, resampled=resampled) == []


def test_other_head_with_scaled_field_of_view_is_rejected(phantom):
    other = make_phantom(2.0, seed=5).t2
    scaled = Volume(other.data, np.diag([1.3, 1.3, 1.3, 1.0]) @ other.affine)
    resampled, _, quality = register_rigid(scaled, phantom.t1)
    with pytest.raises(InputError, match="different subject"):
        check_pairing(phantom.t1, scaled, quality, resampled=resampled)


def test_cropped_field_of_view_is_rejected(phantom):
    k = phantom.t2.shape[2]
    cropped = phantom.t2.crop((slice(None), slice(None), slice(k - 35, k)))  # the top 70 mm
    resampled, _, quality = register_rigid(cropped, phantom.t1)
    with pytest.raises(InputError, match="covers only"):
        check_pairing(phantom.t1, cropped, quality, resampled=resampled)


def test_unrelated_image_is_rejected(phantom):
    with pytest.raises(InputError, match="mutual information"):
        check_pairing(phantom.t1, phantom.t2, {"overlap": 1.0, "nmi": 1.001})
