"""Tests for skullseg.mesh: masks to closed, outward-oriented surfaces, checks and writers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import trimesh

from skullseg.mesh import (
    Surface,
    check_mesh,
    icosphere,
    largest_components,
    mask_to_surface,
    to_trimesh,
    write_mesh,
)
from skullseg.volume import Volume

CENTRE_MM = np.array([10.0, -20.0, 30.0])


def ball_volume(affine: np.ndarray, shape: tuple[int, int, int], r_out: float, r_in: float = 0):
    """Mask of the world-space ball/shell r_in < |x - CENTRE_MM| <= r_out on a grid."""
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    dist = np.linalg.norm(ijk @ affine[:3, :3].T + affine[:3, 3] - CENTRE_MM, axis=-1)
    return Volume((dist <= r_out) & (dist > r_in), affine)


def grid_affine(zoom_mm: float, n: int) -> np.ndarray:
    """RAS affine of an n^3 grid of zoom_mm voxels centred on CENTRE_MM."""
    affine = np.diag([zoom_mm, zoom_mm, zoom_mm, 1.0])
    affine[:3, 3] = CENTRE_MM - zoom_mm * (n - 1) / 2
    return affine


def centroid_mm(surface: Surface) -> np.ndarray:
    """Centre of the enclosed solid (signed tetrahedra from the origin)."""
    a, b, c = (surface.vertices[surface.faces[:, i]] for i in range(3))
    vol = np.einsum("ij,ij->i", a, np.cross(b, c))
    return (vol[:, None] * (a + b + c)).sum(0) / (4 * vol.sum())


@pytest.fixture(scope="module")
def sphere() -> Surface:
    return mask_to_surface(ball_volume(grid_affine(1.0, 50), (50, 50, 50), 20.0))


@pytest.fixture(scope="module")
def shell() -> tuple[Surface, dict]:
    surface = mask_to_surface(ball_volume(grid_affine(1.5, 96), (96, 96, 96), 66.0, 60.0))
    return surface, check_mesh(surface)


def test_sphere_is_closed_outward_and_keeps_its_volume(sphere):
    info = check_mesh(sphere)
    assert info["watertight"] and info["winding_consistent"] and info["manifold"]
    assert info["outward_normals"] and not info["self_intersecting"]
    assert info["n_bodies"] == 1 and info["euler_number"] == 2
    assert info["volume_ml"] == pytest.approx(4 / 3 * np.pi * 20.0**3 / 1000, rel=0.03)
    assert info["area_cm2"] == pytest.approx(4 * np.pi * 20.0**2 / 100, rel=0.05)
    np.testing.assert_allclose(centroid_mm(sphere), CENTRE_MM, atol=0.05)
    radii = np.linalg.norm(sphere.vertices - CENTRE_MM, axis=1)
    assert np.all(np.abs(radii - 20.0) < 1.0)


def test_normals_point_outward_face_by_face(sphere):
    v, f = sphere.vertices, sphere.faces
    normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert np.all(np.einsum("ij,ij->i", normals, v[f].mean(1) - CENTRE_MM) > 0)


def test_shell_has_outer_and_reversed_inner_surface(shell):
    surface, info = shell
    assert info["watertight"] and info["manifold"] and info["outward_normals"]
    assert info["n_bodies"] == 2 and info["euler_number"] == 4
    assert not info["self_intersecting"]
    expected_ml = 4 / 3 * np.pi * (66.0**3 - 60.0**3) / 1000
    assert info["volume_ml"] == pytest.approx(expected_ml, rel=0.05)
    # the inner surface's normals point into the cavity, towards the centre
    v, f = surface.vertices, surface.faces
    centre = v[f].mean(1)
    inner = np.linalg.norm(centre - CENTRE_MM, axis=1) < 63.0
    normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    outward = np.einsum("ij,ij->i", normals, centre - CENTRE_MM) > 0
    assert inner.any() and not outward[inner].any() and outward[~inner].all()


@pytest.mark.parametrize(
    ("layout", "mirrored"), [("LPS", False), ("LAS", True), ("JKI", False), ("JIK", True)]
)
def test_storage_orientation_does_not_change_the_world_surface(sphere, layout, mirrored):
    n, ras = 50, grid_affine(1.0, 50)
    affine = ras.copy()
    if layout in ("LPS", "LAS"):
        flips = [-1.0, -1.0 if layout == "LPS" else 1.0, 1.0]
        affine[:3, :3] = np.diag(flips)
        affine[:3, 3] = np.where(np.array(flips) < 0, ras[:3, 3] + (n - 1), ras[:3, 3])
    else:  # axes permuted: same world sample points stored in another order
        affine[:3, :3] = ras[:3, :3][:, [2, 0, 1] if layout == "JKI" else [1, 0, 2]]
    assert (np.linalg.det(affine[:3, :3]) < 0) == mirrored
    other = mask_to_surface(ball_volume(affine, (n, n, n), 20.0))
    info, reference = check_mesh(other), check_mesh(sphere)
    assert info["watertight"] and info["outward_normals"] and info["n_bodies"] == 1
    assert info["volume_ml"] == pytest.approx(reference["volume_ml"], rel=0.005)
    np.testing.assert_allclose(centroid_mm(other), centroid_mm(sphere), atol=0.05)


def test_anisotropic_voxels_are_handled_by_the_affine():
    affine = np.diag([0.8, 1.0, 1.6, 1.0])
    affine[:3, 3] = CENTRE_MM - np.array([0.8 * 29.5, 24.5, 1.6 * 15.5])
    surface = mask_to_surface(ball_volume(affine, (60, 50, 32), 18.0))
    info = check_mesh(surface)
    assert info["watertight"] and info["outward_normals"]
    assert info["volume_ml"] == pytest.approx(4 / 3 * np.pi * 18.0**3 / 1000, rel=0.03)
    np.testing.assert_allclose(centroid_mm(surface), CENTRE_MM, atol=0.1)


@pytest.mark.parametrize("target", [500, 3000])
def test_target_faces_is_an_upper_bound(sphere, target):
    volume = ball_volume(grid_affine(1.0, 50), (50, 50, 50), 20.0)
    small = mask_to_surface(volume, target_faces=target)
    info = check_mesh(small)
    assert info["n_faces"] <= target < len(sphere.faces)
    assert info["watertight"] and info["manifold"] and info["outward_normals"]
    assert not info["self_intersecting"]
    assert info["volume_ml"] == pytest.approx(check_mesh(sphere)["volume_ml"], rel=0.02)


def test_small_components_and_bubbles_are_dropped():
    volume = ball_volume(grid_affine(1.0, 50), (50, 50, 50), 12.0, 2.0)  # 0.03 ml bubble
    data = volume.data.copy()
    data[2:5, 2:5, 2:5] = True  # a 0.027 ml speck
    surface = mask_to_surface(volume.with_data(data), min_component_ml=0.5)
    info = check_mesh(surface)
    assert info["n_bodies"] == 1 and info["watertight"] and info["outward_normals"]
    assert info["volume_ml"] == pytest.approx(4 / 3 * np.pi * 12.0**3 / 1000, rel=0.03)
    with pytest.raises(ValueError, match="no component"):
        mask_to_surface(volume.with_data(np.zeros(volume.shape, bool)))


def test_mask_touching_the_grid_border_is_closed():
    full = Volume(np.ones((12, 10, 8), bool), np.diag([2.0, 2.0, 2.0, 1.0]))
    info = check_mesh(mask_to_surface(full, smooth_iterations=0, blur_sigma_voxels=0))
    assert info["watertight"] and info["outward_normals"] and info["n_bodies"] == 1
    assert info["volume_ml"] == pytest.approx(24 * 20 * 16 / 1000, rel=0.15)


def test_largest_components_keeps_big_ones():
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[:3, :3, :3] = 1
    mask[6, 6, 6] = 1
    mask[4, 4, 4] = 1
    mask[3, 3, 3] = 1  # touches the cube by a corner: 26-connected
    kept = largest_components(mask, min_voxels=5)
    assert kept.dtype == bool and kept.sum() == 29 and not kept[6, 6, 6]


def test_check_mesh_flags_defects():
    ball = icosphere(3)
    info = check_mesh(ball)
    assert info["watertight"] and info["outward_normals"] and info["manifold"]
    assert (info["n_vertices"], info["n_faces"], info["euler_number"]) == (642, 1280, 2)

    inside_out = check_mesh(Surface(ball.vertices, ball.faces[:, ::-1]))
    assert inside_out["watertight"] and not inside_out["outward_normals"]
    assert inside_out["volume_ml"] < 0

    holed = check_mesh(Surface(ball.vertices, ball.faces[1:]))
    assert not holed["watertight"] and not holed["manifold"] and not holed["outward_normals"]

    one_flipped = ball.faces.copy()
    one_flipped[0] = one_flipped[0, ::-1]
    assert not check_mesh(Surface(ball.vertices, one_flipped))["winding_consistent"]

    def union(outer: Surface, inner: Surface) -> Surface:
        faces = np.vstack([outer.faces, inner.faces + len(outer.vertices)])
        return Surface(np.vstack([outer.vertices, inner.vertices]), faces)

    small = Surface(ball.vertices * 0.5, ball.faces[:, ::-1])  # a cavity, normals inward
    hollow = check_mesh(union(ball, small))
    assert hollow["outward_normals"] and hollow["n_bodies"] == 2 and hollow["euler_number"] == 4
    assert hollow["volume_ml"] == pytest.approx(info["volume_ml"] * (1 - 0.125))
    assert not hollow["self_intersecting"]
    wrong_cavity = check_mesh(union(ball, Surface(ball.vertices * 0.5, ball.faces)))
    assert not wrong_cavity["outward_normals"]

    overlapping = check_mesh(union(ball, Surface(ball.vertices + [0.5, 0, 0], ball.faces)))
    assert overlapping["self_intersecting"] and overlapping["watertight"]


def test_icosphere_is_the_mne_standard():
    ico = icosphere(4)
    assert ico.vertices.shape == (2562, 3) and ico.faces.shape == (5120, 3)
    assert ico.faces.dtype == np.int64 and ico.vertices.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(ico.vertices, axis=1), 1.0)
    assert check_mesh(ico)["outward_normals"]


def test_surface_validates_its_arrays():
    with pytest.raises(ValueError):
        Surface(np.zeros((3, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError):
        Surface(np.zeros((3, 3)), np.array([[0, 1, 3]]))


@pytest.mark.parametrize("ext", [".stl", ".ply", ".obj"])
def test_written_meshes_reload_watertight(sphere, tmp_path, ext):
    path = write_mesh(sphere, tmp_path / f"sphere{ext}")
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = trimesh.load(path, force="mesh")
    assert loaded.is_watertight and loaded.is_winding_consistent
    assert loaded.volume == pytest.approx(to_trimesh(sphere).volume, rel=1e-4)


def test_gifti_and_freesurfer_reload_with_nibabel(sphere, tmp_path):
    gii = nib.load(write_mesh(sphere, tmp_path / "sphere.gii"))
    coords, faces = gii.agg_data(("pointset", "triangle"))
    np.testing.assert_allclose(coords, sphere.vertices, atol=1e-4)
    np.testing.assert_array_equal(faces, sphere.faces)
    pointset = gii.get_arrays_from_intent("NIFTI_INTENT_POINTSET")[0]
    assert pointset.coordsys.dataspace == nib.nifti1.xform_codes["scanner"]

    coords, faces = nib.freesurfer.read_geometry(write_mesh(sphere, tmp_path / "sphere.surf"))
    np.testing.assert_allclose(coords, sphere.vertices, atol=1e-4)
    np.testing.assert_array_equal(faces, sphere.faces)


def test_write_replaces_existing_file_and_rejects_unknown_formats(sphere, tmp_path):
    target = tmp_path / "out.stl"
    target.write_text("old")
    write_mesh(sphere, target)
    assert trimesh.load(target).is_watertight
    with pytest.raises(ValueError, match="unknown mesh format"):
        write_mesh(sphere, tmp_path / "sphere.vtk")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.stl"]


def test_crossing_broad_phase_does_not_depend_on_chunking():
    from skullseg.geometry import _crossing_candidates, count_crossings

    ball = icosphere(4)
    rng = np.random.default_rng(0)
    faces = np.vstack([ball.faces, ball.faces + len(ball.vertices)])
    moved = ball.vertices * 0.97 + rng.normal(0, 0.01, ball.vertices.shape) + [0.1, 0, 0]
    tri = np.vstack([ball.vertices, moved])[faces]
    lo, hi = tri.min(1), tri.max(1)
    whole = _crossing_candidates(lo, hi, faces, entries_per_chunk=10**9)
    for chunk in (500, 5000):
        np.testing.assert_array_equal(
            _crossing_candidates(lo, hi, faces, entries_per_chunk=chunk), whole
        )
    assert count_crossings(np.vstack([ball.vertices, moved]), faces) > 0
