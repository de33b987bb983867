"""Exact mesh geometry: point-to-triangle distances and triangle-crossing tests.

:func:`points_to_mesh` gives exact distances from points to a triangle mesh (surface
distances in evaluation, BEM gaps, skull thickness). :func:`count_crossings` counts
pairs of triangles that cross each other, through a uniform-grid broad phase over the
triangles' bounding boxes and exact orientation predicates; the mesh stage uses the
same pieces to undo smoothing where it made a surface cross itself.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from .parallel import cpu_threads

__all__ = ["count_crossings", "point_triangle_distance", "points_to_mesh"]


def point_triangle_distance(p: NDArray, a: NDArray, b: NDArray, c: NDArray) -> NDArray:
    """Exact distances between points p[n] and triangles (a, b, c)[n] (Ericson, 2005)."""
    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c

    def dot(u: NDArray, v: NDArray) -> NDArray:
        return np.einsum("ij,ij->i", u, v)

    d1, d2, d3, d4, d5, d6 = (dot(e, q) for q in (ap, bp, cp) for e in (ab, ac))
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    # Voronoi regions of the triangle, applied from the lowest priority up.
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        closest = a + (vb * denom)[:, None] * ab + (vc * denom)[:, None] * ac  # interior
        w_bc = ((d4 - d3) / ((d4 - d3) + (d5 - d6)))[:, None]
        closest = np.where(
            ((va <= 0) & (d4 >= d3) & (d5 >= d6))[:, None], b + w_bc * (c - b), closest
        )
        w_ac = (d2 / (d2 - d6))[:, None]
        closest = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[:, None], a + w_ac * ac, closest)
        closest = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, closest)
        v_ab = (d1 / (d1 - d3))[:, None]
        closest = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[:, None], a + v_ab * ab, closest)
        closest = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, closest)
        closest = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, closest)
    dist = np.linalg.norm(p - closest, axis=1)
    corners = np.min([np.linalg.norm(p - x, axis=1) for x in (a, b, c)], axis=0)
    return np.where(np.isfinite(dist), np.minimum(dist, corners), corners)


def points_to_mesh(points: NDArray, vertices: NDArray, faces: NDArray) -> NDArray:
    """Exact distance from each point to the nearest triangle of a mesh (same units).

    Examples
    --------
    >>> tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> points_to_mesh(np.array([[0.2, 0.2, 2.0]]), tri, np.array([[0, 1, 2]]))
    array([2.])
    """
    tri = vertices[faces]  # (m, 3, 3)
    centroids = tri.mean(axis=1)
    radius = float(np.linalg.norm(tri - centroids[:, None], axis=2).max())
    tree = cKDTree(centroids)
    best = np.full(len(points), np.inf)
    todo = np.arange(len(points))
    k = 8
    while todo.size:
        k = min(k, len(faces))
        dk, ik = tree.query(points[todo], k=k)
        dk, f = dk.reshape(len(todo), k), ik.reshape(-1)
        rep = np.repeat(points[todo], k, axis=0)
        d = point_triangle_distance(rep, tri[f, 0], tri[f, 1], tri[f, 2]).reshape(-1, k).min(1)
        best[todo] = d
        # Triangles beyond the k nearest centroids are >= (k-th distance - radius) away.
        if k == len(faces):
            break
        todo = todo[d > dk[:, -1] - radius]
        k *= 4
    return best


def _group_offsets(n: NDArray) -> NDArray:
    """``[0..n0-1, 0..n1-1, ...]`` for counts ``n = [n0, n1, ...]`` (one cumulative sum).

    >>> _group_offsets(np.array([3, 0, 2]))
    array([0, 1, 2, 0, 1])
    """
    n = n[n > 0]
    if not len(n):
        return np.zeros(0, n.dtype)
    steps = np.ones(int(n.sum()), n.dtype)
    steps[0] = 0
    steps[(np.cumsum(n) - n)[1:]] = 1 - n[:-1]  # back to 0 at each group's start
    return np.cumsum(steps, dtype=n.dtype)


def _cell_mm(lo: NDArray, hi: NDArray) -> float:
    """Grid cell for boxes ``lo..hi``: 1.5 typical extents, so no box spans too many cells."""
    extent = (hi - lo).max(1)
    return max(1.5 * float(np.median(extent)), float(extent.max()) / 16, 1e-9)


def _grid_entries(lo: NDArray, hi: NDArray, cell_mm: float, *, with_dims: bool = False) -> tuple:
    """Every (box, grid cell) incidence of boxes ``lo..hi`` (>= 0), sorted by cell key
    (and the grid's shape, with ``with_dims``)."""
    ilo = np.floor(lo / cell_mm).astype(np.int32)
    span = np.floor(hi / cell_mm).astype(np.int32) - ilo + 1
    counts = span.prod(1)
    box = np.repeat(np.arange(len(lo), dtype=np.int32), counts)
    rest, cells = _group_offsets(counts), ilo[box]
    for d in range(lo.shape[1]):
        cells[:, d] += rest % span[box, d]
        rest //= span[box, d]
    dims = cells.max(0).astype(np.int64) + 1
    key = np.ravel_multi_index(cells.T.astype(np.int64), dims)
    order = np.argsort(key, kind="stable")
    return (box[order], key[order], dims) if with_dims else (box[order], key[order])


def _orient3d(a: NDArray, b: NDArray, c: NDArray, d: NDArray) -> NDArray:
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a)


def _segment_crosses(p: NDArray, q: NDArray, tri: NDArray) -> NDArray[np.bool_]:
    """Segment pq properly crosses triangle (a, b, c) (touching does not count)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    straddles = _orient3d(a, b, c, p) * _orient3d(a, b, c, q) < 0
    s = np.stack([_orient3d(p, q, a, b), _orient3d(p, q, b, c), _orient3d(p, q, c, a)])
    return straddles & (np.all(s > 0, axis=0) | np.all(s < 0, axis=0))


def _crossing_candidates(
    lo: NDArray, hi: NDArray, faces: NDArray, *, entries_per_chunk: int = 200_000
) -> NDArray[np.int64]:
    """Pairs of faces sharing no vertex whose boxes ``lo..hi`` overlap (grid broad phase).

    Each pair is reported once: by the grid cell that holds the low corner of the
    two boxes' overlap (no sort-and-unique over all pairs). The cells are worked
    through in runs of about ``entries_per_chunk`` box entries, which keeps the
    intermediate pair arrays in cache (most overlapping boxes are neighbours
    that share a vertex), on up to two threads (:func:`skullseg.parallel.cpu_threads`);
    the pairs come out in the same order whatever the chunking.
    """
    lo, hi = lo - lo.min(0), hi - lo.min(0)
    lo, hi = np.ascontiguousarray(lo), np.ascontiguousarray(hi)
    cell = _cell_mm(lo, hi)
    box, key, dims = _grid_entries(lo, hi, cell, with_dims=True)
    n_chunks = max(1, len(key) // max(int(entries_per_chunk), 1))
    marks = key[np.linspace(0, len(key) - 1, n_chunks + 1).astype(np.int64)[1:-1]]
    bounds = np.r_[0, np.searchsorted(key, marks, "left"), len(key)]  # at cell boundaries
    f32 = faces.astype(np.int32)

    def run(i: int) -> NDArray[np.int64]:
        s, e = int(bounds[i]), int(bounds[i + 1])
        return _cell_pairs(lo, hi, box[s:e], key[s:e], dims, cell, f32)

    if n_chunks == 1:
        return run(0)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(cpu_threads(2)) as pool:  # numpy releases the GIL in these loops
        parts = list(pool.map(run, range(n_chunks)))
    return np.concatenate(parts, axis=0)


def _cell_pairs(
    lo: NDArray, hi: NDArray, box: NDArray, key: NDArray, dims: NDArray, cell: float, f32: NDArray
) -> NDArray[np.int64]:
    """The candidate pairs owned by a run of whole grid cells (entries sorted by ``key``)."""
    if not len(key):
        return np.zeros((0, 2), np.int64)
    new = np.r_[True, key[1:] != key[:-1]]
    group_end = np.r_[np.flatnonzero(new)[1:], len(key)].astype(np.int32)[np.cumsum(new) - 1]
    after = group_end - np.arange(len(key), dtype=np.int32) - 1  # later entries in the cell
    first = np.repeat(np.arange(len(key), dtype=np.int32), after)
    a, b = box[first], box[first + 1 + _group_offsets(after)]
    for d in range(3):  # axis by axis: each pass shrinks the next
        lo_d, hi_d = lo[:, d], hi[:, d]
        ok = (lo_d[a] <= hi_d[b]) & (lo_d[b] <= hi_d[a])
        a, b, first = a[ok], b[ok], first[ok]
    corner = np.floor(np.maximum(lo[a], lo[b]) / cell).astype(np.int64)
    own = np.ravel_multi_index(np.minimum(corner, dims - 1).T, dims) == key[first]
    a, b = a[own], b[own]
    fa, fb = f32[a], f32[b]
    apart = ~(fa[:, :, None] == fb[:, None, :]).any((1, 2))
    return np.stack([a[apart], b[apart]], axis=1).astype(np.int64)


def _separated(u: NDArray, w: NDArray) -> NDArray[np.bool_]:
    """Triangles ``w`` lie strictly on one side of the planes of triangles ``u``."""
    side = np.stack([_orient3d(u[:, 0], u[:, 1], u[:, 2], w[:, k]) for k in range(3)])
    return np.all(side > 0, axis=0) | np.all(side < 0, axis=0)


def _pairs_cross(tri: NDArray, pairs: NDArray, chunk: int = 500_000) -> NDArray[np.bool_]:
    """For each pair of triangles, whether an edge of one properly crosses the other."""
    hit = np.zeros(len(pairs), bool)
    for s in range(0, len(pairs), chunk):
        ta, tb = tri[pairs[s : s + chunk, 0]], tri[pairs[s : s + chunk, 1]]
        split = ~(_separated(ta, tb) | _separated(tb, ta))  # cheap rejection first
        ta, tb, found = ta[split], tb[split], np.zeros(split.sum(), bool)
        for k in range(3):
            found |= _segment_crosses(ta[:, k], ta[:, (k + 1) % 3], tb)
            found |= _segment_crosses(tb[:, k], tb[:, (k + 1) % 3], ta)
        hit[s : s + chunk][split] = found
    return hit


def crossing_pairs(vertices: NDArray, faces: NDArray) -> NDArray[np.int64]:
    """Pairs of face indices, ``(K, 2)``, of triangles sharing no vertex that properly cross.

    Examples
    --------
    >>> v = np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0.5, 0.5, -1], [0.5, 0.5, 1], [3, 3, 0]])
    >>> crossing_pairs(v, np.array([[0, 1, 2], [3, 4, 5]])).tolist()
    [[0, 1]]
    """
    if len(faces) < 2:
        return np.zeros((0, 2), np.int64)
    tri = vertices[faces]
    pairs = _crossing_candidates(tri.min(1), tri.max(1), faces)
    return pairs[_pairs_cross(tri, pairs)]


def count_crossings(vertices: NDArray, faces: NDArray) -> int:
    """Number of pairs of triangles sharing no vertex that properly cross each other.

    Examples
    --------
    >>> v = np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0.5, 0.5, -1], [0.5, 0.5, 1], [3, 3, 0]])
    >>> count_crossings(v, np.array([[0, 1, 2], [3, 4, 5]]))
    1
    """
    return len(crossing_pairs(vertices, faces))
