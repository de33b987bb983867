"""Checks of a triangle surface: is it fit for a 3D printer and for a BEM?

:func:`check_mesh` reports watertightness, consistent winding, outward normals (cavities
included, by ray-parity nesting), manifoldness (``manifold3d``), self-intersections and the
enclosed volume. The signed-volume and nesting helpers are shared with
:mod:`skullseg.mesh`, which orients the surfaces it makes by them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .geometry import _cell_mm, _grid_entries, _group_offsets, count_crossings
from .topology import _edge_stats, _face_bodies, _n_used, _pinch_free

if TYPE_CHECKING:
    from .mesh import Surface

__all__ = ["check_mesh"]


# -- mesh topology ------------------------------------------------------------------------
def _signed_volumes_mm3(vertices: NDArray, faces: NDArray, labels: NDArray, n: int) -> NDArray:
    """Signed volume enclosed by each labelled body (divergence theorem)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return np.bincount(labels, np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0, minlength=n)


_RAY_FRAME = np.linalg.qr([[0.93, 0.29, -0.22], [-0.31, 0.95, 0.07], [0.19, 0.12, 0.97]])[0]


def _nesting_depths(vertices: NDArray, faces: NDArray, labels: NDArray, n: int) -> NDArray:
    """For each body, how many other bodies enclose it: the parity of crossings with each
    other body of a ray cast, in a generic direction, from one of its face centroids."""
    if n < 2:
        return np.zeros(n, np.int64)
    tri = (vertices @ _RAY_FRAME)[faces]  # the ray runs along the first rotated axis
    probe = tri[np.unique(labels, return_index=True)[1]].mean(1)
    lo, hi = tri[:, :, 1:].min(1), tri[:, :, 1:].max(1)
    origin, cell_mm = lo.min(0), _cell_mm(lo, hi)
    box, key = _grid_entries(lo - origin, hi - origin, cell_mm)
    cells = np.floor((probe[:, 1:] - origin) / cell_mm).astype(np.int64)
    dims = np.floor((hi.max(0) - origin) / cell_mm).astype(np.int64) + 1
    probe_key = np.ravel_multi_index(np.clip(cells, 0, dims - 1).T, dims)
    start = np.searchsorted(key, probe_key, "left")
    count = np.searchsorted(key, probe_key, "right") - start
    body = np.repeat(np.arange(n), count)
    t = box[np.repeat(start, count) + _group_offsets(count)]
    a, b, c, p = tri[t, 0], tri[t, 1], tri[t, 2], probe[body]

    def area(u: NDArray, v: NDArray) -> NDArray:  # signed area of (u, v, p) in the y-z plane
        return (v[:, 1] - u[:, 1]) * (p[:, 2] - u[:, 2]) - (v[:, 2] - u[:, 2]) * (p[:, 1] - u[:, 1])

    w = np.stack([area(b, c), area(c, a), area(a, b)], axis=1)  # barycentric weights of a, b, c
    inside = np.all(w > 0, axis=1) | np.all(w < 0, axis=1)
    x = (w * np.stack([a[:, 0], b[:, 0], c[:, 0]], axis=1)).sum(1) / np.where(inside, w.sum(1), 1)
    hit = inside & (x > p[:, 0]) & (labels[t] != body)
    pair, crossings = np.unique(body[hit] * n + labels[t[hit]], return_counts=True)
    return np.bincount(pair[crossings % 2 == 1] // n, minlength=n)


def _count_self_intersections(surface: Surface) -> int:
    """Crossing triangle pairs of ``surface`` (:func:`skullseg.geometry.count_crossings`)."""
    return count_crossings(surface.vertices, surface.faces)


def _is_manifold(surface: Surface) -> bool:
    """Closed, consistently wound, pinch-free, and accepted by manifold3d (status NoError)."""
    import manifold3d

    if not len(surface.faces) or not _edge_stats(surface.faces)[1]:
        return False
    if not _pinch_free(surface.faces):
        return False
    mesh = manifold3d.Mesh(
        vert_properties=surface.vertices.astype(np.float32),
        tri_verts=surface.faces.astype(np.uint32),
    )
    try:
        return manifold3d.Manifold(mesh).status() == manifold3d.Error.NoError
    except Exception:  # construction itself refused the mesh
        return False


# -- the report --------------------------------------------------------------------
def check_mesh(surface: Surface) -> dict:
    """Topology and geometry report of a surface.

    Returns
    -------
    dict
        With these keys:

        n_vertices, n_faces : int
            Referenced vertices and faces.
        watertight : bool
            Every edge is shared by exactly two faces.
        winding_consistent : bool
            Watertight, and the two faces of every edge traverse it in opposite directions.
        outward_normals : bool
            Winding consistent, total signed volume > 0, and each body's signed volume is > 0
            when an even number of other bodies enclose it and < 0 when odd (nesting found by
            ray parity): normals point from material into empty space, cavities included.
        volume_ml, area_cm2 : float
            Signed enclosed volume (material volume when oriented) and surface area.
        n_bodies : int
            Connected components (faces linked through shared vertices).
        euler_number : int
            V - E + F; 2 per sphere-like shell, 2 - 2g for a shell of genus g.
        manifold : bool
            Winding consistent, no pinched vertex (two fans sharing a vertex), and
            ``manifold3d.Manifold`` builds it with status ``NoError``.
        self_intersecting : bool
            Some two triangles that share no vertex cross: an edge of one passes through the
            interior of the other (exact predicate up to float rounding, grid broad phase).
            Touching/coplanar contacts and folds between triangles that share a vertex are not
            counted.

    Examples
    --------
    >>> from skullseg.mesh import icosphere
    >>> info = check_mesh(icosphere(3))
    >>> info["watertight"], info["n_bodies"], info["euler_number"], info["self_intersecting"]
    (True, 1, 2, False)
    """
    v, f = surface.vertices, surface.faces
    watertight, consistent, n_edges = _edge_stats(f) if len(f) else (False, False, 0)
    labels, n_bodies = _face_bodies(len(v), f)
    volumes = _signed_volumes_mm3(v, f, labels, n_bodies)
    outward = consistent and volumes.sum() > 0
    if outward:
        want = np.where(_nesting_depths(v, f, labels, n_bodies) % 2 == 0, 1.0, -1.0)
        outward = bool(np.all(volumes * want > 0))
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return {
        "n_vertices": _n_used(f),
        "n_faces": int(len(f)),
        "watertight": watertight,
        "winding_consistent": consistent,
        "outward_normals": bool(outward),
        "volume_ml": float(volumes.sum() / 1000.0),
        "area_cm2": float(np.linalg.norm(cross, axis=1).sum() / 2.0 / 100.0),
        "n_bodies": n_bodies,
        "manifold": _is_manifold(surface),
        "self_intersecting": _count_self_intersections(surface) > 0,
        "euler_number": _n_used(f) - n_edges + int(len(f)),
    }
