"""Checks of a three-layer BEM, as MNE-Python makes them, without MNE.

MNE refuses a BEM whose surfaces have topological defects (a vertex with fewer than three
triangles), are not closed and outward ("the surface is not complete"), or do not nest
("inner skull is not completely inside outer skull"). :func:`check_bem` runs the same tests
on our surfaces (solid angles seen from the centroid and from every vertex of the layer
inside, Van Oosterom-Strackee) and adds what MNE does not report: edge manifoldness,
orientation, genus and the minimum gap between neighbouring layers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .geometry import points_to_mesh
from .mesh import Surface

__all__ = ["BEM_NAMES", "check_bem"]

#: Surface names, inside out, as MNE's ``bem/`` folder names them.
BEM_NAMES = ("inner_skull", "outer_skull", "outer_skin")


def _solid_angles(vertices: NDArray, faces: NDArray, points: NDArray, chunk: int = 64):
    """Total solid angle (sr) of a closed mesh seen from each point (Van Oosterom-Strackee).

    4 pi inside a closed, outward-oriented surface, 0 outside (the winding number x 4 pi).
    """
    tri = vertices[faces]  # (m, 3 corners, 3 coordinates)
    corner = [[tri[:, k, d] for d in range(3)] for k in range(3)]
    out = np.empty(len(points))
    for s in range(0, len(points), chunk):
        p = points[s : s + chunk]
        (x1, y1, z1), (x2, y2, z2), (x3, y3, z3) = (
            [c[None, :] - p[:, d, None] for d, c in enumerate(k)] for k in corner
        )
        l1 = np.sqrt(x1 * x1 + y1 * y1 + z1 * z1)
        l2 = np.sqrt(x2 * x2 + y2 * y2 + z2 * z2)
        l3 = np.sqrt(x3 * x3 + y3 * y3 + z3 * z3)
        triple = x1 * (y2 * z3 - z2 * y3) + y1 * (z2 * x3 - x2 * z3) + z1 * (x2 * y3 - y2 * x3)
        den = (
            l1 * l2 * l3
            + (x1 * x2 + y1 * y2 + z1 * z2) * l3
            + (x1 * x3 + y1 * y3 + z1 * z3) * l2
            + (x2 * x3 + y2 * y3 + z2 * z3) * l1
        )
        out[s : s + chunk] = 2.0 * np.arctan2(triple, den).sum(axis=1)
    return out


def _topology(surface: Surface) -> dict:
    f = surface.faces
    n = len(surface.vertices)
    per_vertex = np.bincount(f.ravel(), minlength=n)
    directed = np.stack([f.ravel(), f[:, [1, 2, 0]].ravel()], axis=1)
    undirected = np.unique(np.sort(directed, axis=1) @ [n, 1], return_counts=True)[1]
    closed = bool(np.all(undirected == 2))
    oriented = closed and len(np.unique(directed @ [n, 1])) == len(directed)
    euler = n - len(undirected) + len(f)
    centroid = surface.vertices.mean(axis=0)
    angle = _solid_angles(surface.vertices, f, centroid[None])[0]
    return {
        "n_vertices": int(n),
        "n_faces": int(len(f)),
        "min_triangles_per_vertex": int(per_vertex.min()),
        "closed": closed,
        "oriented": bool(oriented),
        "euler_number": int(euler),
        "genus": int((2 - euler) // 2) if closed else -1,
        "complete": bool(abs(angle / (4 * np.pi) - 1.0) <= 1e-5),
    }


def check_bem(surfs: dict[str, Surface]) -> dict:
    """MNE-style checks of a 3-layer BEM, without MNE.

    Per surface: every vertex has at least 3 triangles (MNE's "topological defects"), the
    solid angles seen from the centroid sum to 4 pi within 1e-5 (MNE's "complete" test:
    closed and outward), every edge is shared by two triangles traversed in opposite
    directions, Euler number 2 (genus 0). Between layers: every vertex of the inner surface
    is inside the next one (solid angle 4 pi seen from it, MNE's ``_assert_inside``) and the
    minimum distance (mm, vertex to triangle, both directions).

    Returns
    -------
    dict
        ``{name: {...}}`` per surface, ``"inner_skull_inside_outer_skull"``,
        ``"outer_skull_inside_outer_skin"`` (bools), ``"min_gap_inner_outer_skull_mm"``,
        ``"min_gap_outer_skull_skin_mm"`` (floats) and ``"ok"`` (every test passed).

    Examples
    --------
    >>> from skullseg.bem import mne_icosphere
    >>> s = mne_icosphere(2)
    >>> surfs = {n: Surface(s.vertices * r, s.faces) for n, r in zip(BEM_NAMES, (80, 86, 92))}
    >>> r = check_bem(surfs)
    >>> r["ok"], r["inner_skull"]["genus"], round(r["min_gap_outer_skull_skin_mm"], 1)
    (True, 0, 5.9)
    """
    out: dict = {}
    ok = True
    for name in BEM_NAMES:
        t = _topology(surfs[name])
        out[name] = t
        ok &= t["min_triangles_per_vertex"] >= 3 and t["complete"] and t["oriented"]
        ok &= t["euler_number"] == 2
    for inner, outer, key in (
        ("inner_skull", "outer_skull", "inner_outer_skull"),
        ("outer_skull", "outer_skin", "outer_skull_skin"),
    ):
        a, b = surfs[inner], surfs[outer]
        angles = _solid_angles(b.vertices, b.faces, a.vertices)
        inside = bool(np.all(np.abs(angles / (4 * np.pi) - 1.0) <= 1e-5))
        gap = min(
            points_to_mesh(a.vertices, b.vertices, b.faces).min(),
            points_to_mesh(b.vertices, a.vertices, a.faces).min(),
        )
        out[f"{inner}_inside_{outer}"] = inside
        out[f"min_gap_{key}_mm"] = round(float(gap), 3)
        ok &= inside
    out["ok"] = bool(ok)
    return out
