"""The synthetic head: truth labels, geometry, contrasts, orientation, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from skullseg import labels as lab
from skullseg.phantom import Phantom, make_phantom, reorient
from skullseg.volume import Volume


@pytest.fixture(scope="module")
def head() -> Phantom:
    return make_phantom(1.5, seed=0)


@pytest.fixture(scope="module")
def coarse() -> Phantom:
    return make_phantom(3.0, seed=2)


def _vols(p: Phantom) -> tuple[Volume, ...]:
    return (p.t1, p.t2, p.ct, p.labels)


def _column_mm(p: Phantom, axis: int, start_mm: tuple[float, float, float]) -> float:
    """Length of skull (label 2) along the +``axis`` world ray from ``start_mm`` (RAS grid)."""
    vol = p.labels
    step_mm = vol.zooms_mm[axis]
    n = int(120 / step_mm)
    points = np.repeat(np.asarray([start_mm], float), n, axis=0)
    points[:, axis] += step_mm * np.arange(n)
    ijk = np.round(vol.world_to_voxel(points)).astype(int)
    ijk = ijk[((ijk >= 0) & (ijk < vol.shape)).all(axis=1)]
    return float((vol.data[tuple(ijk.T)] == lab.SKULL).sum() * step_mm)


def test_label_values_and_grid(head: Phantom) -> None:
    assert set(np.unique(head.labels.data).tolist()) == {0, 1, 2, 3, 4, 5}
    assert head.labels.data.dtype == np.uint8
    for vol in (head.t1, head.t2, head.ct):
        assert vol.data.dtype == np.float32
        assert vol.same_grid(head.labels)
    assert head.labels.zooms_mm == (1.5, 1.5, 1.5)


def test_tissue_volumes_plausible(head: Phantom) -> None:
    ml = head.labels.voxel_volume_ml
    volume_ml = {k: float((head.labels.data == k).sum() * ml) for k in range(6)}
    assert 150 < volume_ml[lab.SKULL] < 900
    assert 1000 < volume_ml[lab.BRAIN] < 1700
    assert 60 < volume_ml[lab.CSF] < 300
    assert 0.1 < volume_ml[lab.AIR_CAVITY] < 2.0


def test_sinus_enclosed_by_bone(head: Phantom) -> None:
    sinus = head.labels.data == lab.AIR_CAVITY
    shell = ndi.binary_dilation(sinus) & ~sinus
    assert sinus.any()
    assert set(np.unique(head.labels.data[shell]).tolist()) == {lab.SKULL}
    # frontal: in front of and above the eyes' level
    centre_mm = head.labels.voxel_to_world(np.argwhere(sinus).mean(axis=0)[None])[0]
    assert centre_mm[1] > 60 and -15 < centre_mm[2] < 25


def test_vault_thickness_follows_request() -> None:
    grid = (3.0, 3.0, 0.5)  # fine along the vertical ray
    thin, thick = (make_phantom(grid, skull_thickness_mm=t, seed=1) for t in (4.0, 9.0))
    t4, t9 = (_column_mm(p, 2, (0.0, 0.0, 0.0)) for p in (thin, thick))
    assert 0.7 * 4.0 - 1.0 <= t4 <= 1.3 * 4.0 + 1.0
    assert 0.7 * 9.0 - 1.0 <= t9 <= 1.3 * 9.0 + 1.0
    assert t9 / t4 == pytest.approx(9.0 / 4.0, rel=0.2)


def test_thin_temporal_reduces_lateral_thickness() -> None:
    grid = (0.5, 3.0, 3.0)  # fine along the lateral ray
    default, thinned = (make_phantom(grid, thin_temporal_mm=t, seed=1) for t in (None, 2.0))
    lateral = [_column_mm(p, 0, (0.0, 0.0, -10.0)) for p in (default, thinned)]
    vertex = [_column_mm(p, 2, (0.0, 0.0, 0.0)) for p in (default, thinned)]
    assert lateral[1] < 0.65 * lateral[0]
    assert lateral[1] < 4.0
    assert vertex[1] == pytest.approx(vertex[0], abs=1.0)


def test_skull_is_closed_shell(coarse: Phantom) -> None:
    inside = np.isin(coarse.labels.data, (lab.CSF, lab.BRAIN))
    outside = ~(inside | np.isin(coarse.labels.data, (lab.SKULL, lab.AIR_CAVITY)))
    assert not (ndi.binary_dilation(inside) & outside).any()


def test_determinism_and_seed(coarse: Phantom) -> None:
    again = make_phantom(3.0, seed=2)
    for a, b in zip(_vols(coarse), _vols(again), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.affine, b.affine)
    other = make_phantom(3.0, seed=3)
    assert not np.array_equal(other.labels.data, coarse.labels.data)


def test_orientations_agree_in_world(coarse: Phantom) -> None:
    lps = make_phantom(3.0, seed=2, orientation="LPS")
    assert lps.labels.shape == coarse.labels.shape
    rng = np.random.default_rng(0)
    ijk = rng.integers(0, coarse.labels.shape, size=(3000, 3))
    world_mm = coarse.labels.voxel_to_world(ijk)
    ijk_lps = np.round(lps.labels.world_to_voxel(world_mm)).astype(int)
    np.testing.assert_array_equal(
        lps.labels.data[tuple(ijk_lps.T)], coarse.labels.data[tuple(ijk.T)]
    )
    np.testing.assert_allclose(lps.labels.center_world(), coarse.labels.center_world(), atol=1e-6)


def test_voxel_size_is_in_stored_order(coarse: Phantom) -> None:
    pir = make_phantom((3.0, 2.0, 2.5), seed=2, orientation="PIR")  # P=y, I=z, R=x
    assert pir.labels.zooms_mm == (3.0, 2.0, 2.5)
    ras = make_phantom((2.5, 3.0, 2.0), seed=2)
    for a, b in zip(_vols(pir), _vols(ras), strict=True):
        expected = reorient(b, "PIR")
        np.testing.assert_array_equal(a.data, expected.data)
        np.testing.assert_allclose(a.affine, expected.affine)


def test_reorient_round_trip() -> None:
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    vol = Volume(data, np.diag([1.0, 2.0, 3.0, 1.0]))
    asl = reorient(vol, "ASL")
    assert asl.shape == (4, 5, 3)
    back = reorient(asl, "RAS")
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine)
    np.testing.assert_allclose(asl.voxel_to_world([[0, 0, 0]]), [[2.0, 0.0, 0.0]])
    for bad in ("RRS", "XYZ", "RA"):
        with pytest.raises(ValueError):
            reorient(vol, bad)


def test_truncate_bottom_removes_neck(coarse: Phantom) -> None:
    cut_mm = -60.0
    cut = make_phantom(3.0, seed=2, truncate_bottom_mm=cut_mm)
    z_mm = cut.labels.voxel_to_world(np.argwhere(np.ones(cut.labels.shape, bool)))[:, 2]
    below = (z_mm < cut_mm).reshape(cut.labels.shape)
    assert (coarse.labels.data[below] == lab.SCALP).sum() > 100  # the neck was there
    assert not cut.labels.data[below].any()
    assert cut.t1.data[below].mean() < 100  # noise floor only
    assert cut.ct.data[below].mean() == pytest.approx(-1000, abs=10)
    np.testing.assert_array_equal(cut.labels.data[~below], coarse.labels.data[~below])


def test_contrasts(head: Phantom) -> None:
    labels, t1, t2, ct = head.labels.data, head.t1.data, head.t2.data, head.ct.data
    brain = labels == lab.BRAIN
    wm = ndi.binary_erosion(brain, iterations=3)
    gm = brain & ~ndi.binary_erosion(brain)
    compact = (labels == lab.SKULL) & (ct > 1300)
    csf = labels == lab.CSF
    means = [float(t1[m].mean()) for m in (wm, gm, csf, compact)]
    assert means == sorted(means, reverse=True), means
    t2_csf = float(t2[csf].mean())
    for k in (lab.SCALP, lab.SKULL, lab.BRAIN):
        assert t2_csf > 1.5 * float(t2[labels == k].mean())
    assert float(ct[labels == lab.SKULL].mean()) > 300
    assert float(np.median(ct[labels == lab.BRAIN])) == pytest.approx(35, abs=10)
    assert float(np.median(ct[labels == lab.BACKGROUND])) == pytest.approx(-1000, abs=10)


def test_eyes_bright_in_t2_outside_skull(head: Phantom) -> None:
    for side in (-1.0, 1.0):
        # along each eye's direction, soft tissue in front of the skull reaches vitreous T2
        direction = np.array([0.36 * side, 0.86, -0.36])
        points_mm = (direction / np.linalg.norm(direction))[None] * np.arange(60, 115)[:, None]
        ijk = tuple(np.round(head.t2.world_to_voxel(points_mm)).astype(int).T)
        soft = head.labels.data[ijk] == lab.SCALP
        assert soft.sum() > 10
        assert float(np.median(head.t2.data[ijk][soft])) > 850  # vitreous; fat is ~700
