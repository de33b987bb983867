"""Skull thickness: local thickness of voxel shells and vertex distances between surfaces."""

from __future__ import annotations

import numpy as np
import pytest

from skullseg.mesh import Surface
from skullseg.radial import sphere_grid
from skullseg.skull import SkullSurfaces
from skullseg.thickness import (
    thickness_map,
    thickness_stats,
    thickness_summary,
    vault_vertices,
    vertex_thickness,
    write_vertex_values,
)
from skullseg.volume import Volume


def _shell(inner_mm: float, thickness_mm: float, zooms=(1.0, 1.0, 1.0), size_mm: float = 100.0):
    """A spherical shell on a grid with voxel sizes ``zooms`` (centre off the voxel grid)."""
    shape = [int(size_mm / z) for z in zooms]
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = [-size_mm / 2 + 0.3, -size_mm / 2 - 0.2, -size_mm / 2 + 0.1]
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    r = np.linalg.norm(ijk @ affine[:3, :3].T + affine[:3, 3], axis=-1)
    return Volume((r >= inner_mm) & (r < inner_mm + thickness_mm), affine)


@pytest.mark.parametrize("thickness_mm", [3.0, 6.0, 8.0])
def test_shell_thickness_is_recovered(thickness_mm):
    shell = _shell(30.0, thickness_mm)
    t = thickness_map(shell)
    assert t.data.dtype == np.float32 and t.same_grid(shell)
    inside = shell.data
    assert np.all(t.data[~inside] == 0) and np.all(t.data[inside] > 0)
    assert abs(float(np.mean(t.data[inside])) - thickness_mm) < 0.35
    assert abs(float(np.median(t.data[inside])) - thickness_mm) < 0.5


def test_anisotropic_voxels_are_measured_in_mm():
    shell = _shell(30.0, 6.0, zooms=(0.8, 0.8, 1.25))
    t = thickness_map(shell)
    assert abs(float(np.median(t.data[shell.data])) - 6.0) < 0.6


def test_every_voxel_takes_the_largest_ball():
    """A thin fin on a thick slab: slab voxels near the fin keep the slab's thickness."""
    m = np.zeros((40, 40, 40), bool)
    m[5:35, 5:35, 5:15] = True  # 10 mm slab
    m[18:21, 5:35, 15:30] = True  # 3 mm fin on top
    t = thickness_map(Volume(m, np.eye(4))).data
    assert 9.0 <= t[20, 20, 14] <= 10.5
    assert 2.0 <= t[19, 20, 25] <= 3.6


def test_empty_mask_gives_zeros():
    t = thickness_map(Volume(np.zeros((5, 6, 7), np.uint8), np.eye(4)))
    assert t.data.shape == (5, 6, 7) and not t.data.any()


def test_vertex_thickness_between_concentric_spheres():
    g = sphere_grid(4)
    ones = np.ones(g.n)
    s = SkullSurfaces(np.array([5.0, -3.0, 2.0]), g, 55 * ones, 60 * ones, 66 * ones, 72 * ones)
    v, f = s.mesh("outer")
    t = vertex_thickness(s, Surface(v, f))
    assert t.shape == (g.n,)
    assert np.allclose(t, 6.0, atol=0.1)


def test_vault_vertices_and_stats():
    z = np.linspace(-50, 100, 151)
    pts = np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=1)
    vault = vault_vertices(pts)
    assert vault.sum() == 71 and z[vault].min() == pytest.approx(30.0)
    stats = thickness_stats(np.arange(1.0, 101.0))
    assert stats == {"mean": 50.5, "median": 50.5, "p5": 5.95, "p95": 95.05, "n": 100}
    assert thickness_stats([0.0, np.nan])["n"] == 0
    assert thickness_stats([1.0, 2.0, 9.0], where=[True, True, False])["mean"] == 1.5


def test_summary_over_the_vault():
    shell = _shell(30.0, 6.0)
    t = thickness_map(shell)
    g = sphere_grid(3)
    ones = np.ones(g.n)
    s = SkullSurfaces(np.zeros(3), g, 25 * ones, 30 * ones, 36 * ones, 40 * ones)
    outer = Surface(*s.mesh("outer"))
    summary = thickness_summary(t, outer, vertex_thickness(s, outer), vault_depth_mm=20.0)
    assert set(summary) == {"vault_depth_mm", "voxels_vault", "vertices_vault"}
    assert abs(summary["voxels_vault"]["median"] - 6.0) < 0.5
    assert abs(summary["vertices_vault"]["median"] - 6.0) < 0.2
    assert summary["vertices_vault"]["n"] < g.n  # only the top 20 mm


def test_vertex_values_files_round_trip(tmp_path):
    import nibabel as nib

    values = np.array([1.5, 6.25, 9.0])
    curv = write_vertex_values(values, tmp_path / "outer_skull.thickness")
    assert np.allclose(nib.freesurfer.read_morph_data(curv), values)
    gii = write_vertex_values(values, tmp_path / "outer_skull.thickness.shape.gii")
    assert np.allclose(nib.load(gii).darrays[0].data, values)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "outer_skull.thickness",
        "outer_skull.thickness.shape.gii",
    ]
