"""Tests of skullseg.evaluate on small synthetic spheres and shells."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from skullseg.evaluate import (
    compare_masks,
    evaluate,
    read_freesurfer_surface,
    resample_labels,
    surface_distances,
    surface_to_surface_distance,
    tkr_to_world,
    vault_mask,
    vox2ras_tkr,
)
from skullseg.volume import Volume

DATA = Path(os.environ.get("SKULLSEG_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))


def grid(shape=(40, 40, 40), zooms=(1.0, 1.0, 1.0), origin=(-20.0, -20.0, -20.0)) -> np.ndarray:
    aff = np.diag([*zooms, 1.0])
    aff[:3, 3] = origin
    return aff


def ball(affine, shape, centre=(0.0, 0.0, 0.0), radius=12.0, inner=None) -> Volume:
    """Rasterise a ball (or a shell when ``inner`` is given) in world mm onto a grid."""
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1).reshape(-1, 3)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    r = np.linalg.norm(xyz - np.asarray(centre), axis=1).reshape(shape)
    mask = r <= radius if inner is None else (r <= radius) & (r > inner)
    return Volume(mask, affine)


def test_identical_masks_are_perfect():
    a = ball(grid(), (40, 40, 40))
    r = compare_masks(a, a)
    assert r["dice"] == r["jaccard"] == r["volume_ratio"] == 1.0
    assert r["assd_mm"] == r["hd95_mm"] == 0.0
    assert r["nsd_1mm"] == r["nsd_2mm"] == 1.0
    assert r["pred_ml"] == r["truth_ml"] == pytest.approx(4 / 3 * math.pi * 12**3 / 1000, rel=0.05)


def test_shifted_sphere_distances():
    # A sphere moved by s: the surface distance is about s*|cos(theta)|, mean s/2, max s.
    aff, shape = grid(), (40, 40, 40)
    r = compare_masks(ball(aff, shape, centre=(4, 0, 0)), ball(aff, shape))
    assert 1.5 < r["assd_mm"] < 2.6
    assert 3.0 <= r["hd95_mm"] <= 4.5
    assert 0.0 < r["nsd_1mm"] < r["nsd_2mm"] < 1.0
    assert 0.5 < r["dice"] < 0.9


def test_anisotropic_voxels_use_mm():
    aff, shape = grid(zooms=(1.0, 1.0, 2.0), origin=(-20, -20, -40)), (40, 40, 40)
    a, b = ball(aff, shape, centre=(0, 0, 4), radius=14), ball(aff, shape, radius=14)
    ab, ba = surface_distances(a, b)
    assert ab.max() == pytest.approx(4.0, abs=0.6)  # 2 slices of 2 mm, not 2 voxels
    assert compare_masks(a, b)["assd_mm"] > 1.2


def test_resample_labels_permuted_grid_is_exact():
    rng = np.random.default_rng(0)
    src = Volume(rng.integers(0, 6, (5, 6, 7)).astype(np.uint8), grid(origin=(3, -2, 1)))
    # Store the same voxels as axes (k, i, j) with i flipped: world positions unchanged.
    data = np.transpose(src.data[::-1], (2, 0, 1))
    perm = np.zeros((4, 4))
    perm[2, 0] = perm[1, 2] = perm[3, 3] = 1  # new (a, b, c) -> old (n_i - 1 - b, c, a)
    perm[0, 1], perm[0, 3] = -1, src.shape[0] - 1
    target = Volume(data, src.affine @ perm)
    assert np.array_equal(resample_labels(src, target).data, data)
    assert np.array_equal(resample_labels(target, src).data, src.data)


def test_resample_outside_is_zero():
    src = Volume(np.ones((4, 4, 4), np.uint8), grid())
    shifted = Volume(np.zeros((4, 4, 4)), grid(origin=(-18, -20, -20)))
    assert resample_labels(src, shifted).data[:, 0, 0].tolist() == [1, 1, 0, 0]


def test_same_object_on_different_grids_agrees():
    truth = ball(grid(), (40, 40, 40))
    # Pred stored at 0.8 mm, axes permuted and flipped, slightly rotated.
    c, s = math.cos(0.2), math.sin(0.2)
    rot = np.array([[0, c, -s], [0, s, c], [-1, 0, 0]]) * 0.8
    aff = np.eye(4)
    aff[:3, :3] = rot
    aff[:3, 3] = -rot @ np.array([25.0, 25.0, 25.0])
    pred = ball(aff, (50, 50, 50))
    r = compare_masks(pred, truth)
    assert r["dice"] > 0.95
    assert r["assd_mm"] < 0.6
    assert r["pred_ml"] == pytest.approx(r["truth_ml"], rel=0.05)
    labels = pred.with_data(pred.data.astype(np.uint8) * 2)
    assert evaluate(labels, truth.with_data(truth.data * 7), truth_label=7)["dice"] > 0.95


def test_vault_region_cuts_the_bottom():
    aff, shape = grid(shape=(40, 40, 40)), (40, 40, 40)
    skull = ball(aff, shape, radius=18, inner=15)
    region = vault_mask(skull, depth_mm=10.0)
    z = skull.voxel_to_world(np.argwhere(region.data))[:, 2]
    top = skull.voxel_to_world(np.argwhere(skull.data))[:, 2].max()
    assert z.min() >= top - 10 - 1e-6 and region.data.sum() < region.data.size
    # A prediction wrong only at the bottom: the vault is perfect, the whole head is not.
    pred = skull.data.copy()
    pred[:, :, :10] = False
    lab_t, lab_p = skull.with_data(skull.data * np.uint8(2)), skull.with_data(pred * np.uint8(2))
    whole = evaluate(lab_p, lab_t, region="whole")
    vault = evaluate(lab_p, lab_t, region="vault", vault_depth_mm=10.0)
    assert whole["dice"] < 0.95 and vault["dice"] == 1.0 and vault["region"] == "vault"
    assert vault["truth_ml"] < whole["truth_ml"]


def test_vault_default_depth_is_70mm():
    aff = grid(zooms=(2.0, 2.0, 2.0), origin=(-100, -100, -100))
    skull = ball(aff, (100, 100, 100), radius=90, inner=84)
    z = skull.voxel_to_world(np.argwhere(vault_mask(skull).data))[:, 2]
    assert z.min() == pytest.approx(90 - 70, abs=2.0)


def test_empty_masks_do_not_crash():
    full = ball(grid(), (40, 40, 40))
    empty = full.with_data(np.zeros(full.shape, bool))
    r = compare_masks(empty, full)
    assert r["dice"] == 0.0 and r["pred_ml"] == 0.0 and r["volume_ratio"] == 0.0
    assert math.isnan(r["assd_mm"]) and math.isnan(r["hd95_mm"]) and math.isnan(r["nsd_2mm"])
    r = compare_masks(full, empty)
    assert r["dice"] == 0.0 and math.isnan(r["volume_ratio"])
    r = compare_masks(empty, empty)
    assert math.isnan(r["dice"]) and math.isnan(r["jaccard"]) and r["truth_ml"] == 0.0
    r = evaluate(empty.with_data(np.zeros(full.shape, np.uint8)), empty, region="vault")
    assert math.isnan(r["dice"])
    with pytest.raises(ValueError):
        evaluate(full, full, region="top")


def test_surface_to_surface_concentric_spheres():
    trimesh = pytest.importorskip("trimesh")
    a = trimesh.creation.icosphere(subdivisions=4, radius=10.0)
    b = trimesh.creation.icosphere(subdivisions=4, radius=12.0)
    r = surface_to_surface_distance(a.vertices, a.faces, b.vertices, b.faces)
    assert r["mean_a_to_b"] == pytest.approx(2.0, abs=0.05)
    assert r["mean_b_to_a"] == pytest.approx(2.0, abs=0.05)
    assert r["p95_symmetric"] == pytest.approx(2.0, abs=0.05)
    same = surface_to_surface_distance(a.vertices, a.faces, a.vertices, a.faces)
    assert same["max_a_to_b"] == pytest.approx(0.0, abs=1e-9)
    # Points above a face's interior: exact perpendicular distance, not to the vertices.
    big = np.array([[-50, -50, 0], [50, -50, 0], [0, 60, 0.0]])
    pts = np.array([[0, 0, 3.0], [1, 2, -1.5], [5, 5, 2]])
    r = surface_to_surface_distance(pts, [[0, 1, 2]], big, [[0, 1, 2]])
    assert r["max_a_to_b"] == pytest.approx(3.0)
    assert r["mean_a_to_b"] == pytest.approx(6.5 / 3)
    far = surface_to_surface_distance(pts + [0, 200, 0], [[0, 1, 2]], big, [[0, 1, 2]])
    assert far["mean_a_to_b"] > 130  # nearest point is the corner (0, 60, 0)


def test_tkr_conversion():
    lia = np.array([[-1.0, 0, 0, 122.7], [0, 0, 1, -119.0], [0, -1, 0, 100.7], [0, 0, 0, 1]])
    tkr = vox2ras_tkr(lia, (256, 256, 256))
    expected = [[-1, 0, 0, 128], [0, 0, 1, -128], [0, -1, 0, 128]]
    assert np.allclose(tkr[:3], expected)
    # Voxel (128, 128, 128) is the origin of surface RAS; its world position is A @ c.
    world = tkr_to_world(lia, (256, 256, 256)) @ [0, 0, 0, 1]
    assert np.allclose(world, lia @ [128, 128, 128, 1])
    aniso = np.diag([0.5, 0.5, 2.0, 1.0])
    assert np.allclose(vox2ras_tkr(aniso, (100, 100, 30)) @ [50, 50, 15, 1], [0, 0, 0, 1])


def test_mne_sample_bem_surfaces_lie_on_truth_labels():
    folder = DATA / "truth" / "mne_sample"
    if not (folder / "bem" / "inner_skull.surf").exists():
        pytest.skip("shared data not available")
    nib = pytest.importorskip("nibabel")
    measure = pytest.importorskip("skimage.measure")
    img = nib.load(folder / "truth_labels.nii.gz")
    ref = Volume(np.asarray(img.dataobj), img.affine)
    verts, faces = read_freesurfer_surface(folder / "bem" / "inner_skull.surf", reference=ref)
    mask = np.pad(ref.data == 1, 1).astype(np.float32)  # label 1 = inside the inner skull
    mv, mf, _, _ = measure.marching_cubes(mask, 0.5)
    r = surface_to_surface_distance(verts, faces, ref.voxel_to_world(mv - 1), mf)
    assert r["mean_a_to_b"] < 0.3 and r["max_a_to_b"] < 1.0
    with pytest.raises(ValueError):
        read_freesurfer_surface(folder / "bem" / "inner_skull.surf")  # no volume info
