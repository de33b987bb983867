"""Star-shaped surfaces as radius functions on a sphere of directions.

A surface is stored as one radius (mm) per direction of an icosphere around a
centre. Surfaces that share the centre and directions nest exactly when
their radii are ordered ray by ray, which is how skullseg guarantees that
inner skull, outer skull and scalp never cross. This module holds the
geometry: sampling image profiles along the rays, smoothing radius maps on
the sphere, and turning radius maps into voxel masks and triangle meshes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .volume import Volume

__all__ = [
    "SphereGrid",
    "sphere_grid",
    "sample_profiles",
    "smooth_on_sphere",
    "robust_smooth_on_sphere",
    "smooth_over_top",
    "close_on_sphere",
    "close_over_top",
    "extend_over_mask",
    "radius_at",
    "inside_mask",
    "inside_masks",
    "radial_mesh",
]


@dataclass(frozen=True)
class SphereGrid:
    """Unit directions (an icosphere's vertices), its triangles and vertex neighbours."""

    directions: NDArray[np.float64]  # (N, 3)
    faces: NDArray[np.int64]  # (M, 3)
    neighbours: NDArray[np.int64]  # (N, 6), padded by repeating (icosphere degree 5 or 6)

    @property
    def n(self) -> int:
        return int(self.directions.shape[0])


def sphere_grid(subdivisions: int = 5) -> SphereGrid:
    """Directions of an icosphere with ``subdivisions`` (4: 2562, 5: 10242, 6: 40962).

    Examples
    --------
    >>> sphere_grid(4).n
    2562
    """
    ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    dirs = np.asarray(ico.vertices, dtype=np.float64)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    nb = np.empty((len(dirs), 6), dtype=np.int64)
    for i, row in enumerate(ico.vertex_neighbors):
        row = list(row)
        nb[i] = (row * 2)[:6]
    return SphereGrid(dirs, np.asarray(ico.faces, dtype=np.int64), nb)


def sample_profiles(
    vol: Volume, centre_world: NDArray, grid: SphereGrid, radii_mm: NDArray, *, order: int = 1
) -> NDArray[np.float32]:
    """Image values along every ray: array (n_directions, n_radii), 0 outside the grid.

    ``radii_mm`` is one set of radii for every ray (n_radii,) or one per ray
    (n_directions, n_radii).
    """
    radii = np.broadcast_to(
        np.asarray(radii_mm, dtype=np.float64), (grid.n, np.shape(radii_mm)[-1])
    )
    pts = centre_world[None, None, :] + grid.directions[:, None, :] * radii[:, :, None]
    ijk = vol.world_to_voxel(pts.reshape(-1, 3)).T
    vals = ndi.map_coordinates(
        vol.data.astype(np.float32, copy=False),
        ijk,
        order=order,
        mode="constant",
        cval=0.0,
        prefilter=False,
    )
    return vals.reshape(radii.shape).astype(np.float32)


def smooth_on_sphere(
    values: NDArray, grid: SphereGrid, iterations: int = 5, weight: float = 0.5
) -> NDArray[np.float64]:
    """Laplacian smoothing of a per-direction map (``weight`` toward the neighbour mean)."""
    v = np.asarray(values, dtype=np.float64).copy()
    for _ in range(iterations):
        v = (1 - weight) * v + weight * v[grid.neighbours].mean(axis=1)
    return v


def smooth_over_top(
    values: NDArray,
    grid: SphereGrid,
    *,
    iterations: int,
    min_z: float = 0.0,
    ramp_z: float = 0.3,
) -> NDArray[np.float64]:
    """Smooth a per-direction map only on the rays that point up (world z).

    The map is smoothed (:func:`smooth_on_sphere`, ``iterations`` passes) and blended
    in by the ray's z component: not at all below ``min_z``, fully from
    ``min_z + ramp_z``.

    Examples
    --------
    >>> g = sphere_grid(2)
    >>> rng = np.random.default_rng(0)
    >>> r = 80.0 + rng.normal(0.0, 1.0, g.n)
    >>> s = smooth_over_top(r, g, iterations=10)
    >>> bool(np.all(s[g.directions[:, 2] <= 0.0] == r[g.directions[:, 2] <= 0.0]))
    True
    >>> top = g.directions[:, 2] > 0.3
    >>> bool(np.std(s[top]) < np.std(r[top]))
    True
    """
    v = np.asarray(values, dtype=np.float64)
    return _blend_over_top(v, smooth_on_sphere(v, grid, iterations), grid, min_z, ramp_z)


def robust_smooth_on_sphere(
    values: NDArray,
    grid: SphereGrid,
    *,
    rings: int = 2,
    tolerance_mm: float = 3.0,
    iterations: int = 5,
) -> NDArray:
    """Replace outliers by the local median, then smooth.

    A value further than ``tolerance_mm`` from the median of its ``rings``-ring
    neighbourhood is replaced by that median; NaNs are filled the same way.
    """
    v = np.asarray(values, dtype=np.float64).copy()
    hood = _ring_neighbourhood(grid, rings)
    for _ in range(3):
        med = np.nanmedian(v[hood], axis=1)
        bad = ~np.isfinite(v) | (np.abs(v - med) > tolerance_mm)
        v[bad] = med[bad]
    if np.any(~np.isfinite(v)):
        v[~np.isfinite(v)] = np.nanmedian(v)
    return smooth_on_sphere(v, grid, iterations)


def close_on_sphere(values: NDArray, grid: SphereGrid, rings: int = 2) -> NDArray[np.float64]:
    """Grey-level closing of a per-direction map: narrow valleys are filled to their rims.

    The maximum over each direction's ``rings``-ring neighbourhood, then the minimum
    of that over the same neighbourhood. A valley narrower than the neighbourhood
    (about ``2 x rings`` grid steps; a step is about 2.2 degrees at 5 subdivisions) is
    raised to the lower of its rims; broad shapes and ridges are kept.

    Examples
    --------
    >>> g = sphere_grid(3)
    >>> r = np.full(g.n, 80.0); r[0] = 70.0  # one direction dips 10 mm
    >>> float(close_on_sphere(r, g, rings=1)[0]), float(close_on_sphere(r, g).min())
    (80.0, 80.0)
    """
    v = np.asarray(values, dtype=np.float64)
    # the rings-ring neighbourhood is the 1-ring one taken rings times, so the grey
    # dilation and erosion are done a ring at a time (memory linear in the grid)
    hood = _ring_neighbourhood(grid, 1)
    for _ in range(rings):
        v = v[hood].max(axis=1)
    for _ in range(rings):
        v = v[hood].min(axis=1)
    return v


def close_over_top(
    values: NDArray, grid: SphereGrid, *, rings: int, min_z: float = 0.2, ramp_z: float = 0.3
) -> NDArray[np.float64]:
    """:func:`close_on_sphere` blended in only on the rays that point up (world z).

    Not at all below ``min_z``, fully from ``min_z + ramp_z``; the map is never lowered.

    Examples
    --------
    >>> g = sphere_grid(3)
    >>> r = np.full(g.n, 80.0)
    >>> top, low = np.argmax(g.directions[:, 2]), np.argmin(g.directions[:, 2])
    >>> r[[top, low]] = 75.0  # one ray dips 5 mm at the top of the head, one at the bottom
    >>> c = close_over_top(r, g, rings=1)
    >>> float(c[top]), float(c[low])
    (80.0, 75.0)
    """
    v = np.asarray(values, dtype=np.float64)
    return _blend_over_top(v, close_on_sphere(v, grid, rings=rings), grid, min_z, ramp_z)


def _blend_over_top(
    values: NDArray, new: NDArray, grid: SphereGrid, min_z: float, ramp_z: float
) -> NDArray[np.float64]:
    """``new`` on the rays that point up, ``values`` below: weight 0 at ray z <= ``min_z``,
    1 from ``min_z + ramp_z``."""
    weight = np.clip((grid.directions[:, 2] - min_z) / ramp_z, 0.0, 1.0)
    return values + weight * (new - values)


def extend_over_mask(
    radii_mm: NDArray,
    mask: Volume,
    centre_world: NDArray,
    grid: SphereGrid,
    *,
    extent_mm: float,
    gap_mm: float,
    step_mm: float = 0.5,
) -> NDArray[np.float64]:
    """Push each ray's radius out over the ``mask`` voxels that continue it outward.

    Walking out from ``radii_mm`` along each ray, the radius goes to the last ``mask``
    sample reached without crossing more than ``gap_mm`` of non-mask samples in a row,
    at most ``extent_mm`` beyond the start (mask sampled by linear interpolation,
    inside where above 0.5). Rays never move in.

    Examples
    --------
    >>> g = sphere_grid(2)
    >>> m = np.zeros((41, 41, 41), np.float32); m[:, :, :17] = 1  # from 3.5 mm below...
    >>> v = Volume(m, np.eye(4)); r = np.full(g.n, 2.0)
    >>> out = extend_over_mask(r, v, np.array([20.0, 20, 20]), g, extent_mm=8, gap_mm=2)  # ...here
    >>> down = int(np.argmin(g.directions[:, 2]))
    >>> float(out[down]), float(out[int(np.argmax(g.directions[:, 2]))])  # extent, unmoved
    (10.0, 2.0)
    """
    r0 = np.asarray(radii_mm, dtype=np.float64)
    rel = np.arange(0.0, extent_mm + 1e-9, step_mm)
    inside = sample_profiles(mask, centre_world, grid, r0[:, None] + rel[None, :]) > 0.5
    misses = np.zeros(grid.n)
    open_ = np.ones(grid.n, dtype=bool)  # rays still walking
    out = r0.copy()
    for j, d in enumerate(rel):
        misses = np.where(inside[:, j], 0.0, misses + step_mm)
        open_ &= misses <= gap_mm
        out = np.where(open_ & inside[:, j], r0 + d, out)
    return out


def _ring_neighbourhood(grid: SphereGrid, rings: int) -> NDArray[np.int64]:
    """Indices of each vertex's ``rings``-ring neighbourhood (with repeats, centre first)."""
    hood = np.concatenate([np.arange(grid.n)[:, None], grid.neighbours], axis=1)
    for _ in range(rings - 1):
        hood = np.concatenate([hood, grid.neighbours[hood].reshape(grid.n, -1)], axis=1)
    return hood


def _lookup_table(
    grid: SphereGrid, values: NDArray, n_theta: int = 181, n_phi: int = 360
) -> NDArray[np.float64]:
    theta = np.linspace(0, np.pi, n_theta)
    phi = np.linspace(-np.pi, np.pi, n_phi, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    pts = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)
    dist, idx = cKDTree(grid.directions).query(pts.reshape(-1, 3), k=3)
    w = 1.0 / np.maximum(dist, 1e-9)
    w /= w.sum(axis=1, keepdims=True)
    return (np.asarray(values)[idx] * w).sum(axis=1).reshape(n_theta, n_phi)


def _table_coords(directions: NDArray, n_theta: int = 181, n_phi: int = 360) -> list[NDArray]:
    """Fractional (theta, phi) indices of unit ``directions`` in a :func:`_lookup_table`."""
    d = np.asarray(directions, dtype=np.float64)
    theta = np.arccos(np.clip(d[:, 2], -1, 1))
    phi = np.arctan2(d[:, 1], d[:, 0])
    return [theta / np.pi * (n_theta - 1), (phi + np.pi) / (2 * np.pi) * n_phi]


def _table_at(table: NDArray, coords: list[NDArray]) -> NDArray[np.float64]:
    padded = np.concatenate([table, table[:, :1]], axis=1)  # phi wraps around
    return ndi.map_coordinates(padded, coords, order=1, mode="nearest")


def radius_at(directions: NDArray, grid: SphereGrid, values: NDArray) -> NDArray[np.float64]:
    """Interpolate a per-direction map at arbitrary unit ``directions`` (K, 3)."""
    table = _lookup_table(grid, values)
    return _table_at(table, _table_coords(directions, *table.shape))


def inside_masks(
    like: Volume, centre_world: NDArray, grid: SphereGrid, radii_list: list[NDArray]
) -> list[NDArray[np.bool_]]:
    """Voxels of ``like``'s grid inside each star-shaped surface (one pass over the voxels)."""
    rmax = max(float(np.max(r)) for r in radii_list) + 2.0
    c_vox = like.world_to_voxel(centre_world[None])[0]
    zoom = np.array(like.zooms_mm)
    lo = np.maximum(np.floor(c_vox - rmax / zoom).astype(int), 0)
    hi = np.minimum(np.ceil(c_vox + rmax / zoom).astype(int) + 1, like.shape)
    outs = [np.zeros(like.shape, dtype=bool) for _ in radii_list]
    if np.any(hi <= lo):
        return outs
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    shape = tuple(b - a for a, b in zip(lo, hi))
    # world position minus the centre, one axis at a time, over the box
    sub = like.crop(box)
    rel = [(sub.world_coordinate(w) - centre_world[w]).ravel() for w in range(3)]
    r = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)
    keep = r < rmax
    rk = np.maximum(r[keep], 1e-9)
    coords = _table_coords(np.stack([c[keep] / rk for c in rel], axis=1))
    del rel
    for out, radii in zip(outs, radii_list):
        flat = np.zeros(r.shape, dtype=bool)
        flat[keep] = r[keep] < _table_at(_lookup_table(grid, radii), coords)
        out[box] = flat.reshape(shape)
    return outs


def inside_mask(
    like: Volume, centre_world: NDArray, grid: SphereGrid, radii_mm: NDArray
) -> NDArray[np.bool_]:
    """Voxels of ``like``'s grid whose centre lies inside the star-shaped surface."""
    return inside_masks(like, centre_world, grid, [radii_mm])[0]


def radial_mesh(
    centre_world: NDArray, grid: SphereGrid, radii_mm: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Vertices (world mm) and outward-oriented faces of a star-shaped surface."""
    verts = centre_world[None, :] + grid.directions * np.asarray(radii_mm)[:, None]
    return verts, grid.faces.copy()
