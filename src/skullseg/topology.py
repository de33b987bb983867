"""Mesh topology: closedness, bodies, pinches, defects, and decimation that keeps them.

Small pure functions on ``(vertices, faces)`` arrays. :func:`defect_vertices` names the
vertices where a triangle mesh stops being a closed, crossing-free 2-manifold;
:func:`decimate` is quadric decimation (``fast_simplification``) that replays its edge
collapses without those that made such a defect, so the result keeps the input's topology.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .geometry import crossing_pairs

__all__ = ["decimate", "defect_vertices", "pinched_vertices"]


def _n_used(faces: NDArray) -> int:
    """Number of vertices referenced by ``faces``."""
    return int(np.count_nonzero(np.bincount(faces.ravel()))) if faces.size else 0


def _edge_keys(faces: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Directed edges (start, end) of every face corner and an undirected key for each."""
    n = int(faces.max()) + 1
    start, end = faces.ravel(), faces[:, [1, 2, 0]].ravel()
    return start, end, np.minimum(start, end) * n + np.maximum(start, end)


def _edge_stats(faces: NDArray) -> tuple[bool, bool, int]:
    """Return (watertight, winding_consistent, n_undirected_edges)."""
    n = int(faces.max()) + 1
    start, end, key = _edge_keys(faces)
    directed = np.sort(start * n + end)
    _, counts = np.unique(key, return_counts=True)
    watertight = bool(counts.size) and bool(np.all(counts == 2))
    consistent = watertight and not np.any(directed[1:] == directed[:-1])
    return watertight, consistent, len(counts)


def _vertex_graph(n_vertices: int, faces: NDArray) -> sparse.csr_matrix:
    """Symmetric boolean vertex adjacency (one entry per direction of every face edge)."""
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    graph = sparse.coo_matrix((np.ones(len(e), bool), (e[:, 0], e[:, 1])), (n_vertices,) * 2)
    graph = graph.tocsr()
    return graph + graph.T


def _vertex_bodies(n_vertices: int, faces: NDArray) -> NDArray[np.int64]:
    """Connected-component label of every vertex (through shared edges)."""
    graph = _vertex_graph(n_vertices, faces)
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _face_bodies(n_vertices: int, faces: NDArray) -> tuple[NDArray[np.int64], int]:
    """Label faces by connected component (faces sharing a vertex); return labels, count."""
    _, face_labels = np.unique(_vertex_bodies(n_vertices, faces)[faces[:, 0]], return_inverse=True)
    return face_labels.astype(np.int64), int(face_labels.max(initial=-1)) + 1


def pinched_vertices(faces: NDArray) -> NDArray[np.int64]:
    """Vertices whose faces form more than one fan (two cones meeting at a point).

    Examples
    --------
    >>> two_cones = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [0, 5, 4], [0, 6, 5], [0, 4, 6]])
    >>> pinched_vertices(two_cones).tolist()
    [0]
    """
    if not len(faces):
        return np.zeros(0, np.int64)
    n = int(faces.max()) + 1
    centre = faces.ravel()
    ends = np.stack([faces[:, [1, 2, 0]].ravel(), faces[:, [2, 0, 1]].ravel()], axis=1)
    keys, ids = np.unique(centre[:, None] * n + ends, return_inverse=True)
    ids = ids.reshape(-1, 2)
    link = sparse.coo_matrix((np.ones(len(ids)), (ids[:, 0], ids[:, 1])), (len(keys),) * 2)
    n_fans, fan = connected_components(link, directed=False)
    owner_fan = np.unique((keys // n) * n_fans + fan)  # one entry per (vertex, fan)
    return np.flatnonzero(np.bincount(owner_fan // n_fans, minlength=n) > 1).astype(np.int64)


def _pinch_free(faces: NDArray) -> bool:
    """True when the faces around every vertex form one fan."""
    return not len(pinched_vertices(faces))


def _compact(vertices: NDArray, faces: NDArray) -> tuple[NDArray, NDArray]:
    """Drop the vertices no face uses and renumber the faces."""
    used, inverse = np.unique(faces, return_inverse=True)
    return vertices[used], inverse.reshape(faces.shape)


def defect_vertices(vertices: NDArray, faces: NDArray) -> NDArray[np.int64]:
    """Vertices where ``(vertices, faces)`` is not a closed, crossing-free 2-manifold.

    All kinds at once: vertices of edges not shared by exactly two faces, of degenerate
    faces and of duplicated faces; pinched vertices (:func:`pinched_vertices`); and the
    vertices of triangles that cross another triangle
    (:func:`skullseg.geometry.crossing_pairs`). Empty means none of these.

    Examples
    --------
    >>> from skullseg.mesh import icosphere
    >>> s = icosphere(2)
    >>> len(defect_vertices(s.vertices, s.faces)), len(defect_vertices(s.vertices, s.faces[1:]))
    (0, 3)
    """
    if not len(faces):
        return np.zeros(0, np.int64)
    n = int(faces.max()) + 1
    start, end, key = _edge_keys(faces)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    open_edge = counts[inverse] != 2
    fs = np.sort(faces, axis=1)
    _, inverse, counts = np.unique(
        (fs[:, 0] * n + fs[:, 1]) * n + fs[:, 2], return_inverse=True, return_counts=True
    )
    bad_face = (counts[inverse] > 1) | (fs[:, 0] == fs[:, 1]) | (fs[:, 1] == fs[:, 2])
    found = [start[open_edge], end[open_edge], faces[bad_face].ravel(), pinched_vertices(faces)]
    found.append(faces[crossing_pairs(vertices, faces).ravel()].ravel())
    return np.unique(np.concatenate(found)).astype(np.int64)


def _strays(v: NDArray, f: NDArray, original: NDArray, mapping: NDArray) -> NDArray[np.int64]:
    """Decimated vertices placed more than two median edge lengths away from every original
    vertex merged into them (an ill-conditioned quadric can throw a vertex metres away)."""
    gap = np.full(len(v), np.inf)
    np.minimum.at(gap, mapping, np.linalg.norm(v[mapping] - original, axis=1))
    edge_mm = np.median(np.linalg.norm(v[f] - v[f[:, [1, 2, 0]]], axis=2))
    return np.flatnonzero(np.isfinite(gap) & (gap > 2.0 * edge_mm)).astype(np.int64)


def _split_off(v: NDArray, f: NDArray, body: NDArray, mapping: NDArray) -> NDArray[np.int64]:
    """Vertices of decimated pieces that split off an original body (all but its largest)."""
    piece = _vertex_bodies(len(v), f)
    n_pieces = int(piece.max()) + 1
    key = np.unique(body * n_pieces + piece[mapping])  # one entry per (body, piece)
    pairs = np.stack([key // n_pieces, key % n_pieces], axis=1)
    size = np.bincount(piece[f[:, 0]], minlength=n_pieces)
    order = np.lexsort((-size[pairs[:, 1]], pairs[:, 0]))  # per body, largest piece first
    pairs = pairs[order]
    extra = pairs[np.r_[False, pairs[1:, 0] == pairs[:-1, 0]], 1]
    used = np.zeros(len(v), bool)
    used[f.ravel()] = True
    return np.flatnonzero(np.isin(piece, extra) & used).astype(np.int64)


def decimate(
    vertices: NDArray,
    faces: NDArray,
    target_faces: int,
    *,
    aggressiveness: float = 7.0,
    max_rounds: int = 8,
) -> tuple[NDArray, NDArray] | None:
    """Quadric decimation to at most ``target_faces`` that keeps a closed manifold closed.

    ``fast_simplification`` records its edge collapses; they are replayed, and wherever the
    result has a defect (a vertex thrown far from the vertices merged into it; one of
    :func:`defect_vertices`: an open or shared edge, a pinch, crossing triangles; a piece
    split off a body) every collapse within two rings of it is dropped and the rest
    replayed again, until no defect is left (at most ``max_rounds`` replays). The mesh is
    simplified a little below the target first, so the patches left whole still fit.

    Parameters
    ----------
    vertices, faces : ndarray
        A closed, crossing-free triangle mesh (``(N, 3)`` float, ``(M, 3)`` int).
    target_faces : int
        Upper bound on the result's face count.
    aggressiveness : float
        ``fast_simplification``'s ``agg`` (higher is faster and coarser).
    max_rounds : int
        Replays allowed before giving up.

    Returns
    -------
    (vertices, faces) or None
        The decimated mesh with the same number of connected bodies, or ``None`` when no
        defect-free result under ``target_faces`` was found.

    Examples
    --------
    >>> from skullseg.mesh import icosphere
    >>> s = icosphere(5)
    >>> v, f = decimate(s.vertices, s.faces, 2000)
    >>> len(f) <= 2000, len(defect_vertices(v, f))
    (True, 0)
    """
    import fast_simplification
    from fast_simplification import replay_simplification

    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if len(faces) <= target_faces:
        return _compact(vertices, faces)
    body = _vertex_bodies(len(vertices), faces)
    ring = _vertex_graph(len(vertices), faces)
    aim = 0.97 * target_faces
    for _ in range(2):  # a second go, aiming lower, when the patches kept whole overshoot
        _, _, collapses = fast_simplification.simplify(
            vertices, faces, target_count=int(aim), agg=aggressiveness, return_collapses=True
        )
        keep = np.ones(len(collapses), bool)
        for _ in range(max_rounds):
            v, f, mapping = replay_simplification(vertices, faces, collapses[keep])
            v, f = np.asarray(v, np.float64), np.asarray(f, np.int64)
            # a stray vertex first (its triangles would swamp the crossing test's grid),
            # then every other kind of defect at once, so that one replay fixes them all
            bad = _strays(v, f, vertices, mapping)
            if not len(bad):
                bad = np.union1d(defect_vertices(v, f), _split_off(v, f, body, mapping))
            if not len(bad):
                break
            near = np.isin(mapping, bad)
            for _ in range(2):
                near |= ring @ near
            keep &= ~(near[collapses[:, 0]] | near[collapses[:, 1]])
        else:
            return None
        if len(f) <= target_faces:
            return _compact(v, f)
        aim *= 0.99 * target_faces / len(f)
    return None
