"""Triangle surfaces from binary masks: watertight, outward-oriented, in world RAS mm.

:func:`mask_to_surface` turns a :class:`~skullseg.volume.Volume` mask into a closed
:class:`Surface`; :func:`check_mesh` (defined in :mod:`skullseg.mesh_checks`) says whether
a surface is fit for printing or BEM;
:func:`write_mesh` saves it as STL, PLY, OBJ, GIFTI or FreeSurfer geometry.

Orientation convention: faces are counter-clockwise seen from outside the material, so
normals point from material into empty space. A hollow body (a skull: bone between an
outer and an inner surface) therefore has an outer shell with positive signed volume and a
cavity shell with negative signed volume; the mesh's total signed volume is the material's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, sparse

from .fileutil import atomic_path
from .geometry import _crossing_candidates, _pairs_cross
from .mesh_checks import _is_manifold, _nesting_depths, _signed_volumes_mm3, check_mesh
from .topology import _compact, _face_bodies, decimate
from .volume import Volume

if TYPE_CHECKING:
    import trimesh

__all__ = [
    "Surface",
    "check_mesh",
    "icosphere",
    "largest_components",
    "mask_to_surface",
    "surface_from_trimesh",
    "taubin_smooth",
    "to_trimesh",
    "write_mesh",
]

_WRITE_FORMATS = (".stl", ".ply", ".obj", ".gii", ".surf")


@dataclass(frozen=True, eq=False)
class Surface:
    """A triangle mesh in world RAS millimetres.

    Parameters
    ----------
    vertices : ndarray, shape (N, 3), float64
        Vertex positions in mm.
    faces : ndarray, shape (M, 3), int64
        Vertex indices, counter-clockwise seen from outside (outward normals).

    Examples
    --------
    >>> s = icosphere(1)
    >>> s.vertices.shape, s.faces.shape
    ((42, 3), (80, 3))
    """

    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vertices, dtype=np.float64)
        f = np.ascontiguousarray(self.faces, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"need (N, 3) vertices and (M, 3) faces, got {v.shape}, {f.shape}")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError("face index out of range")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)


def to_trimesh(surface: Surface) -> trimesh.Trimesh:
    """Return a ``trimesh.Trimesh`` copy of ``surface`` (no merging or other processing)."""
    import trimesh

    return trimesh.Trimesh(surface.vertices.copy(), surface.faces.copy(), process=False)


def surface_from_trimesh(mesh: trimesh.Trimesh) -> Surface:
    """Return a :class:`Surface` from any object with ``vertices`` and ``faces``."""
    return Surface(np.array(mesh.vertices), np.array(mesh.faces))


def icosphere(subdivisions: int) -> Surface:
    """Unit sphere from a subdivided icosahedron (``10 * 4**s + 2`` vertices).

    Examples
    --------
    >>> icosphere(4).vertices.shape  # the MNE BEM standard
    (2562, 3)
    """
    import trimesh

    return surface_from_trimesh(trimesh.creation.icosphere(subdivisions=subdivisions))


# -- masks --------------------------------------------------------------------------------
def largest_components(mask: NDArray, min_voxels: int) -> NDArray[np.bool_]:
    """Keep the 26-connected components of ``mask`` with at least ``min_voxels`` voxels.

    Examples
    --------
    >>> m = np.zeros((6, 6, 6), bool); m[:3, :3, :3] = True; m[5, 5, 5] = True
    >>> int(largest_components(m, min_voxels=2).sum())
    27
    """
    labels, n = ndimage.label(np.asarray(mask) != 0, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= max(int(min_voxels), 1)
    keep[0] = False
    return keep[labels]


# -- mesh topology ------------------------------------------------------------------------
def _orient_outward(vertices: NDArray, faces: NDArray) -> NDArray[np.int64]:
    """Flip bodies so that each points away from material (even depth: +vol, odd: -vol)."""
    labels, n = _face_bodies(len(vertices), faces)
    volumes = _signed_volumes_mm3(vertices, faces, labels, n)
    want = np.where(_nesting_depths(vertices, faces, labels, n) % 2 == 0, 1.0, -1.0)
    flip = (np.sign(volumes) * want < 0)[labels]
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


def _untangle(vertices: NDArray, reference: NDArray, faces: NDArray, rounds: int = 10) -> NDArray:
    """Move vertices around crossing triangles back to their ``reference`` (crossing-free)
    positions, growing the reverted patch until nothing crosses."""
    v, changed = vertices.copy(), np.ones(len(faces), bool)
    # one broad phase for all rounds: boxes that hold each face in both positions
    moved_tri, ref_tri = vertices[faces], reference[faces]
    lo = np.minimum(moved_tri.min(1), ref_tri.min(1))
    hi = np.maximum(moved_tri.max(1), ref_tri.max(1))
    candidates = _crossing_candidates(lo, hi, faces)
    for _ in range(rounds):
        tri = v[faces]
        pairs = candidates[changed[candidates].any(1)]  # others were crossing-free already
        hit = _pairs_cross(tri, pairs)
        if not hit.any():
            return v
        moved = np.zeros(len(v), bool)
        moved[faces[pairs[hit]].ravel()] = True
        moved[faces[moved[faces].any(1)].ravel()] = True  # and their one-ring
        v[moved] = reference[moved]
        changed = moved[faces].any(1)
    return reference.copy()


# -- mesh processing ----------------------------------------------------------------------
def taubin_smooth(
    vertices: NDArray, faces: NDArray, *, iterations: int, lam: float = 0.5, mu: float = -0.53
) -> NDArray[np.float64]:
    """Taubin lambda/mu smoothing with umbrella weights; moves vertices, keeps topology.

    Examples
    --------
    >>> s = icosphere(2)
    >>> v = taubin_smooth(s.vertices, s.faces, iterations=10)
    >>> bool(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=0.02))
    True
    """
    n = len(vertices)
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    adj = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), (n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    avg = sparse.diags(1.0 / np.maximum(degree, 1.0)) @ adj
    v = np.array(vertices, dtype=np.float64)
    still = degree == 0
    for _ in range(iterations):
        for step in (lam, mu):
            delta = avg @ v - v
            delta[still] = 0.0
            v += step * delta
    return v


def _decimate(
    vertices: NDArray, faces: NDArray, target_faces: int | None
) -> tuple[NDArray, NDArray]:
    """Quadric decimation to <= ``target_faces`` that keeps the surface a crossing-free closed
    manifold with the same bodies (:func:`skullseg.topology.decimate`); else no decimation."""
    if target_faces is None or len(faces) <= target_faces:
        return vertices, faces
    result = decimate(vertices, faces, target_faces)
    if result is None or not _is_manifold(Surface(*result)):
        return vertices, faces
    return result


def mask_to_surface(
    mask: Volume,
    *,
    smooth_iterations: int = 20,
    target_faces: int | None = 200_000,
    min_component_ml: float = 0.5,
    blur_sigma_voxels: float = 0.5,
) -> Surface:
    """Mesh the non-zero voxels of ``mask`` as a closed, outward-oriented surface in world mm.

    Steps: drop 26-connected components smaller than ``min_component_ml``; crop and pad so
    the surface closes at the grid border; blur lightly (``blur_sigma_voxels``) and run
    marching cubes at 0.5; map vertex indices through the full affine (any voxel size, flips,
    permutations); drop shells enclosing less than ``min_component_ml`` (bits split off by
    the blur; small enclosed bubbles, which fills them); Taubin smoothing, undone locally
    wherever it made triangles cross; quadric decimation to at most ``target_faces`` that
    leaves whole the patches where a collapse would open, pinch, cross or split the surface
    (:func:`skullseg.topology.decimate`; none if that fails); orient every shell so normals
    point from material into empty space (a cavity shell inside a body is reversed, so the
    total signed volume is the material volume).

    Parameters
    ----------
    mask : Volume
        Binary mask; non-zero is inside.
    smooth_iterations : int
        Taubin lambda/mu iterations (0 disables).
    target_faces : int or None
        Upper bound on the face count; ``None`` keeps the marching-cubes resolution.
    min_component_ml : float
        Components and enclosed bubbles smaller than this (millilitres) are dropped/filled.
    blur_sigma_voxels : float
        Gaussian sigma, in voxels per axis, applied before marching cubes (0 disables).

    Returns
    -------
    Surface
        Possibly several closed shells (``check_mesh(s)["n_bodies"]``).

    Examples
    --------
    >>> i, j, k = np.mgrid[:40, :40, :40]
    >>> ball = Volume(((i - 20) ** 2 + (j - 20) ** 2 + (k - 20) ** 2 <= 15**2), np.eye(4))
    >>> s = mask_to_surface(ball)
    >>> info = check_mesh(s)
    >>> info["watertight"], info["outward_normals"], round(info["volume_ml"], 1)
    (True, True, 14.1)
    """
    min_mm3 = 1000.0 * min_component_ml
    min_voxels = int(np.ceil(min_component_ml / mask.voxel_volume_ml))
    solid = largest_components(mask.data, min_voxels)
    if not solid.any():
        raise ValueError(f"mask has no component of at least {min_component_ml} ml")
    pad = 2 + int(np.ceil(4 * blur_sigma_voxels))
    nz = np.nonzero(solid.any((1, 2))), np.nonzero(solid.any((0, 2))), np.nonzero(solid.any((0, 1)))
    lo = np.array([a[0].min() for a in nz])
    hi = np.array([a[0].max() + 1 for a in nz])
    field = np.pad(solid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], pad).astype(np.float32)
    if blur_sigma_voxels > 0:
        field = ndimage.gaussian_filter(field, blur_sigma_voxels)
    level = np.float32(0.5)
    while np.any(field == level):  # a grid value on the level makes coincident vertices
        level = np.nextafter(level, np.float32(0))
    from skimage.measure import marching_cubes

    ijk, faces, _, _ = marching_cubes(field, float(level))
    ijk = ijk.astype(np.float64) + (lo - pad)
    faces = faces.astype(np.int64)
    if _signed_volumes_mm3(ijk, faces, np.zeros(len(faces), np.int64), 1)[0] < 0:
        faces = faces[:, ::-1]  # skimage's winding: make index-space normals outward
    vertices = mask.voxel_to_world(ijk)
    if np.linalg.det(mask.affine[:3, :3]) < 0:
        faces = faces[:, ::-1]  # a mirroring affine reverses the winding
    labels, n = _face_bodies(len(vertices), faces)  # blurring can split off small bodies
    volumes_mm3 = _signed_volumes_mm3(vertices, faces, labels, n)
    vertices, faces = _compact(vertices, faces[np.abs(volumes_mm3)[labels] >= min_mm3])
    if not len(faces):
        raise ValueError(f"mask has no component of at least {min_component_ml} ml")
    if smooth_iterations > 0:
        smoothed = taubin_smooth(vertices, faces, iterations=smooth_iterations)
        vertices = _untangle(smoothed, vertices, faces)
    vertices, faces = _decimate(vertices, faces, target_faces)
    return Surface(vertices, _orient_outward(vertices, faces))


# -- output -----------------------------------------------------------------------------
def _write_gifti(surface: Surface, path: str) -> None:
    import nibabel as nib
    from nibabel.gifti import GiftiCoordSystem, GiftiDataArray, GiftiImage

    world = GiftiCoordSystem("NIFTI_XFORM_SCANNER_ANAT", "NIFTI_XFORM_SCANNER_ANAT", np.eye(4))
    points = GiftiDataArray(
        surface.vertices.astype(np.float32), intent="NIFTI_INTENT_POINTSET", coordsys=world
    )
    triangles = GiftiDataArray(surface.faces.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE")
    nib.save(GiftiImage(darrays=[points, triangles]), path)


def write_mesh(surface: Surface, path: str | Path) -> Path:
    """Write ``surface`` atomically; the format follows the extension.

    ``.stl`` (binary), ``.ply`` (binary), ``.obj``, ``.gii`` (GIFTI pointset + triangles,
    scanner/world coordinates) and ``.surf`` (FreeSurfer geometry, coordinates as given,
    i.e. world RAS, not FreeSurfer's tkr-RAS).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "ball.stl"
    >>> write_mesh(icosphere(2), out).stat().st_size
    16084
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_FORMATS:
        raise ValueError(f"unknown mesh format {path.suffix!r}; use one of {_WRITE_FORMATS}")
    with atomic_path(path, suffix=ext) as tmp:
        if ext == ".gii":
            _write_gifti(surface, tmp)
        elif ext == ".surf":
            from nibabel.freesurfer import write_geometry

            write_geometry(tmp, surface.vertices, surface.faces.astype(np.int32))
        else:
            to_trimesh(surface).export(tmp, file_type=ext[1:])
    return path
