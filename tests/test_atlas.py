"""The packaged samseg-derived atlas: loading, ITK (LPS) bridging, warping, registration."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi
import SimpleITK as sitk

from skullseg import atlas as at
from skullseg import sitkgrid
from skullseg.phantom import make_phantom
from skullseg.volume import Volume


@pytest.fixture(scope="module")
def atlas() -> at.Atlas:
    return at.load_atlas()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _pull(vol: Volume, atlas_from_subject: np.ndarray, grid: Volume) -> Volume:
    """Reference resampling in scipy: the value at atlas point T @ x for each grid voxel x."""
    vox = np.linalg.inv(vol.affine) @ atlas_from_subject @ grid.affine
    out = ndi.affine_transform(
        vol.data, vox[:3, :3], offset=vox[:3, 3], output_shape=grid.shape, order=1
    )
    return grid.with_data(out)


def _known_affine() -> np.ndarray:
    """atlas_from_subject: 10 degrees about x, scale 1.05, 10 mm translation."""
    t = at._rotation(0, 10.0) @ np.diag([1.05, 1.05, 1.05, 1.0])
    t[:3, 3] = [10.0, -6.0, 8.0]
    return t


def test_load_atlas(atlas):
    assert tuple(atlas.priors) == at.CLASSES
    total = sum(p.data for p in atlas.priors.values())
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    for name, p in atlas.priors.items():
        assert p.data.dtype == np.float32 and p.same_grid(atlas.template), name
        assert 0.0 <= p.data.min() and p.data.max() <= 1.0
    assert atlas.template.zooms_mm == (2.0, 2.0, 2.0)
    assert atlas.template.data.dtype == np.float32 and atlas.template.data.max() <= 1.0
    assert "165 Skull" in atlas.info["classes"]["skull"]
    # plausible volumes (ml) of an adult head in MNI space
    ml = {c: float(p.data.sum()) * atlas.template.voxel_volume_ml for c, p in atlas.priors.items()}
    assert 1100 < ml["brain"] < 1600 and 300 < ml["skull"] < 800 and 5 < ml["eyes"] < 30
    # orientation (RAS): skull over the vertex, brain beneath, both eyes in front
    top = atlas.template.world_to_voxel([[0.0, -20.0, 92.0]])[0].round().astype(int)
    mid = atlas.template.world_to_voxel([[30.0, -20.0, 40.0]])[0].round().astype(int)
    assert atlas.priors["skull"].data[tuple(top)] > 0.9
    assert atlas.priors["brain"].data[tuple(mid)] > 0.9
    eyes = atlas.template.voxel_to_world(np.argwhere(atlas.priors["eyes"].data > 0.5))
    assert eyes[:, 1].mean() > 40 and eyes[:, 2].mean() < -20
    assert (eyes[:, 0] > 20).sum() > 200 and (eyes[:, 0] < -20).sum() > 200


def test_sitk_bridge_uses_lps():
    affine = np.array([[0, -2.0, 0, 10], [0, 0, 3.0, -5], [1.5, 0, 0, 7], [0, 0, 0, 1]])
    vol = Volume(np.random.default_rng(0).random((4, 5, 6)).astype(np.float32), affine)
    img = sitkgrid.to_sitk(vol)
    for ijk in [(0, 0, 0), (1, 2, 3), (3, 4, 5)]:
        lps = img.TransformIndexToPhysicalPoint(ijk[::-1])
        ras = vol.voxel_to_world([ijk])[0]
        np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-9)
        assert img.GetPixel(ijk[::-1]) == pytest.approx(vol.data[ijk])
    m = _known_affine()
    back = sitkgrid.itk_to_matrix(sitkgrid.matrix_to_itk(m, np.array([3.0, -4.0, 5.0])))
    np.testing.assert_allclose(back, m, atol=1e-9)
    tx = sitk.Euler3DTransform([1.0, 2.0, 3.0], 0.1, 0.2, 0.3, [4.0, 5.0, 6.0])
    p = np.array([7.0, -8.0, 9.0])
    np.testing.assert_allclose(sitkgrid.itk_to_matrix(tx)[:3] @ np.r_[p, 1], tx.TransformPoint(p))


def test_warp_priors_matches_reference(atlas):
    # an LPS-stored 1.5 mm grid larger than the atlas, so part of it is not covered
    affine = np.diag([-1.5, -1.5, 1.5, 1.0])
    affine[:3, 3] = [120.0, 140.0, -110.0]
    grid = Volume(np.zeros((160, 190, 170), np.uint8), affine)
    t = _known_affine()
    warped = at.warp_priors(atlas, t, grid)
    assert set(warped) == {*at.CLASSES, "coverage"}
    cover = warped["coverage"].data
    ref_cover = _pull(atlas.template.with_data(np.ones(atlas.template.shape)), t, grid).data
    inside = ref_cover > 0.999
    assert inside.mean() > 0.3 and (cover < 0.5).mean() > 0.05
    assert np.all(cover[inside] > 0.999)
    for c in ("skull", "brain"):
        ref = _pull(atlas.priors[c], t, grid).data
        np.testing.assert_allclose(warped[c].data[inside], ref[inside], atol=1e-4)
    total = sum(warped[c].data for c in at.CLASSES)
    np.testing.assert_allclose(total[cover > 0.01], 1.0, atol=1e-4)
    assert np.all(total[cover == 0] == 0)


def test_warp_priors_sheared_grid(atlas):
    affine = np.array([[2.0, 0.3, 0, -70], [0, 2.0, 0.2, -100], [0, 0, 2.0, -60], [0, 0, 0, 1]])
    grid = Volume(np.zeros((70, 90, 80), np.uint8), affine)
    t = _known_affine()
    warped = at.warp_priors(atlas, t, grid, ("skull",))
    ref = _pull(atlas.priors["skull"], t, grid).data
    inside = warped["coverage"].data > 0.999
    assert inside.mean() > 0.5
    np.testing.assert_allclose(warped["skull"].data[inside], ref[inside], atol=1e-4)


def test_register_recovers_known_affine(atlas):
    truth = _known_affine()
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = [-90.0, -125.0, -95.0]
    grid = Volume(np.zeros((120, 140, 130), np.float32), affine)
    subject = _pull(atlas.template, truth, grid)
    t, info = at.register_atlas(atlas, subject)
    brain = at.warp_priors(atlas, truth, grid, ("brain",))["brain"].data > 0.5
    xyz = np.c_[grid.voxel_to_world(np.argwhere(brain)), np.ones(int(brain.sum()))]
    err = np.linalg.norm(xyz @ (t - truth)[:3].T, axis=1)
    assert err.max() < 2.0, (err.mean(), err.max(), info)
    assert info["scale"] == pytest.approx(1 / 1.05, abs=0.02)
    t2, _ = at.register_atlas(atlas, subject)
    np.testing.assert_array_equal(t, t2)  # deterministic


def test_register_phantom(atlas):
    ph = make_phantom(2.0)
    t, info = at.register_atlas(atlas, ph.t1)
    warped = at.warp_priors(atlas, t, ph.t1)
    truth = ph.labels.data
    assert _dice(warped["brain"].data > 0.5, truth == 4) > 0.7, info
    assert _dice(warped["skull"].data > 0.5, truth == 2) > 0.3, info
    assert info["head_dice"] > 0.8


@pytest.mark.slow
def test_register_mne_sample(atlas, data_dir):
    folder = data_dir / "truth" / "mne_sample"
    img = nib.load(folder / "t1.nii.gz")
    t1 = Volume(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    truth = np.asarray(nib.load(folder / "truth_labels.nii.gz").dataobj)
    t, info = at.register_atlas(atlas, t1)
    warped = at.warp_priors(atlas, t, t1, ("brain", "csf", "skull"))
    skull = _dice(warped["skull"].data > 0.5, truth == 2)
    intracranial = _dice(warped["brain"].data + warped["csf"].data > 0.5, truth == 1)
    assert skull > 0.55 and intracranial > 0.92, (skull, intracranial, info)
    assert info["seconds"] < 30


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["siemens_decubitus_HFDL_t1_5mm.nii.gz", "tumour_t1_2.6mm_partial.nii.gz"]
)
def test_register_converges_on_hard_heads(atlas, data_dir, name):
    img = nib.load(data_dir / "heads" / name)
    t1 = Volume(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    _, info = at.register_atlas(atlas, t1)
    assert info["head_dice"] > 0.85 and 0.8 < info["scale"] < 1.2, info
