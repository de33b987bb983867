"""BEM surfaces for MNE-Python: inner skull, outer skull and outer skin as nested icospheres.

Each surface is an icosahedron subdivided ``ico`` times (ico 4: 2562 vertices and 5120
triangles, the MNE default) whose vertices are moved along their directions from the skull
centre to the fitted boundary (the radius maps of :class:`~skullseg.skull.SkullSurfaces`).
Fitting an icosphere, rather than decimating a marching-cubes mesh, gives closed genus-0
surfaces with even triangles, and surfaces that share one centre and one set of directions
nest exactly when their radii are ordered on every ray. The vertex and triangle order is
MNE's own subdivided icosahedron (``mne/data/icos.fif.gz``, grades 0-4), so
``mne.make_bem_model(subject, ico=4)`` (or ``ico=3``, ...) can downsample our ico-4 surfaces
itself; ``ico=None`` uses them as they are.

Coordinates. skullseg works in world RAS mm (the input image's affine ``A``: voxel ->
scanner RAS). MNE reads ``SUBJECTS_DIR/<subject>/bem/*.surf`` in FreeSurfer *surface RAS*
("tkr RAS", MNE's "MRI" coordinate frame) of the subject's T1. The tkr matrix of an image
has the same rotation and voxel sizes as ``A`` but maps voxel ``shape / 2`` to the origin
(:func:`skullseg.evaluate.vox2ras_tkr`), so::

    tkr = vox2ras_tkr(A, shape) @ inv(A) @ world      # a pure translation:
    tkr = world - c_ras,   c_ras = A @ (shape / 2)    # the world position of voxel shape/2

:func:`write_bem` writes the ``.surf`` files in the tkr RAS of the input image and stores
``c_ras`` (and the grid) in the file's volume info, so ``world = tkr + c_ras``. When the
input is the subject's FreeSurfer ``T1.mgz`` / ``orig.mgz`` (or a NIfTI of it), these are
exactly the coordinates MNE expects. For another image of the same head, MNE's MRI frame
is the tkr RAS of the FreeSurfer T1; the surfaces are then off by the difference of the two
images' ``c_ras`` (use the world-RAS ``.gii`` copies and your own registration instead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

from .bem_checks import BEM_NAMES, check_bem
from .evaluate import vox2ras_tkr
from .fileutil import atomic_path
from .geometry import points_to_mesh
from .labels import AIR_CAVITY, SKULL
from .mesh import Surface, write_mesh
from .radial import extend_over_mask, radius_at, robust_smooth_on_sphere
from .skull import SkullSurfaces
from .volume import Volume

__all__ = ["BEM_NAMES", "mne_icosphere", "bem_surfaces", "check_bem", "write_bem"]

#: Rays whose direction's z is below this are at the skull base (:func:`bem_surfaces`).
SKULL_BASE_MAX_DIR_Z = 0.2

# MNE's icosahedron (grade 0): a vertex at each pole, two rings of five at z = +-1/sqrt(5).
_Z = 1.0 / np.sqrt(5.0)
_RING = 2.0 / np.sqrt(5.0)
_UPPER = np.deg2rad([0.0, 72.0, 144.0, 216.0, 288.0])
_LOWER = np.deg2rad([324.0, 36.0, 108.0, 180.0, 252.0])
_ICO0_VERTICES = np.concatenate(
    [
        [[0.0, 0.0, 1.0]],
        np.stack([_RING * np.cos(_UPPER), _RING * np.sin(_UPPER), np.full(5, _Z)], axis=1),
        np.stack([_RING * np.cos(_LOWER), _RING * np.sin(_LOWER), np.full(5, -_Z)], axis=1),
        [[0.0, 0.0, -1.0]],
    ]
)
_ICO0_FACES = np.array(
    [
        [0, 3, 4], [0, 4, 5], [0, 5, 1], [0, 1, 2], [0, 2, 3],
        [3, 2, 8], [3, 8, 9], [3, 9, 4], [4, 9, 10], [4, 10, 5],
        [5, 10, 6], [5, 6, 1], [1, 6, 7], [1, 7, 2], [2, 7, 8],
        [8, 11, 9], [9, 11, 10], [10, 11, 6], [6, 11, 7], [7, 11, 8],
    ]
)  # fmt: skip


def mne_icosphere(grade: int) -> Surface:
    """Unit icosphere with MNE's vertex and triangle order (``10 * 4**grade + 2`` vertices).

    Each triangle ``(a, b, c)`` is split into ``(a, ab, ac), (ac, bc, c), (ab, bc, ac),
    (ab, b, bc)``; new vertices are numbered in order of first use (``ac``, ``bc``, ``ab``)
    and projected onto the sphere. For grades 0-4 the triangles equal those of MNE's
    ``icos.fif.gz`` (grade 5 there has another order). Faces are counter-clockwise seen
    from outside.

    Examples
    --------
    >>> s = mne_icosphere(4)
    >>> s.vertices.shape, s.faces.shape
    ((2562, 3), (5120, 3))
    """
    if not 0 <= grade <= 7:
        raise ValueError(f"icosphere grade must be 0..7, got {grade}")
    verts, faces = _ICO0_VERTICES.copy(), _ICO0_FACES.copy()
    for _ in range(grade):
        a, b, c = faces.T
        n = len(verts)
        pairs = np.stack([[a, c], [b, c], [a, b]], axis=2).reshape(2, -1)  # ac, bc, ab per face
        key = np.minimum(*pairs) * n + np.maximum(*pairs)
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        rank = np.empty(len(uniq), np.int64)
        rank[np.argsort(first)] = np.arange(len(uniq))  # number by first use
        mid = (n + rank[inverse]).reshape(-1, 3)
        ac, bc, ab = mid.T
        ordered = uniq[np.argsort(first)]
        lo, hi = ordered // n, ordered % n
        new = verts[lo] + verts[hi]
        verts = np.concatenate([verts, new / np.linalg.norm(new, axis=1, keepdims=True)])
        faces = np.stack([a, ab, ac, ac, bc, c, ab, bc, ac, ab, b, bc], 1).reshape(-1, 3)
    return Surface(verts, faces)


def _mean_neighbour_operator(faces: NDArray, n: int) -> sparse.csr_matrix:
    """Sparse matrix averaging each vertex's one-ring neighbours."""
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    adj = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), (n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    return (sparse.diags(1.0 / np.maximum(degree, 1.0)) @ adj).tocsr()


def _smooth(values: NDArray, avg: sparse.csr_matrix, iterations: int, weight: float = 0.5):
    v = np.asarray(values, dtype=np.float64).copy()
    for _ in range(iterations):
        v = (1.0 - weight) * v + weight * (avg @ v)
    return v


def _gaps_mm(dirs: NDArray, faces: NDArray, r_in: NDArray, r_out: NDArray) -> NDArray:
    """Per ray, the smaller of: inner vertex -> outer mesh and outer vertex -> inner mesh."""
    v_in, v_out = dirs * r_in[:, None], dirs * r_out[:, None]
    return np.minimum(points_to_mesh(v_in, v_out, faces), points_to_mesh(v_out, v_in, faces))


def _push_out(
    dirs: NDArray,
    faces: NDArray,
    avg: sparse.csr_matrix,
    r_in: NDArray,
    r_out: NDArray,
    target_mm: float,
    max_iterations: int,
) -> NDArray:
    """Grow ``r_out`` until every vertex is ``target_mm`` from the other surface."""
    adj = (avg > 0).astype(np.float64) + sparse.eye(len(dirs), format="csr")
    r_out = np.maximum(r_out, r_in + target_mm)  # radial gap first: no crossing
    for _ in range(max_iterations):
        gap = _gaps_mm(dirs, faces, r_in, r_out)
        short = gap < target_mm
        if not short.any():
            return r_out
        # On an oblique patch the normal distance is about the radial gap x cos(angle), so
        # scale the radial gap by target / gap there (at most +2 target per round).
        radial = r_out - r_in
        grow = np.minimum(radial * (target_mm / np.maximum(gap, 1e-6) - 1.0), 2 * target_mm)
        push = np.where(short, grow, 0.0)
        ring = adj.multiply(push[None, :]).max(axis=1).toarray().ravel()
        push = np.maximum(push, _smooth(ring, avg, 2))  # spread to the one-ring, smoothly
        r_out = r_out + push + 0.01 * short
    raise RuntimeError(f"BEM surfaces: could not reach a {target_mm:.2f} mm gap")


def bem_surfaces(
    surfaces: SkullSurfaces,
    *,
    labels: Volume | None = None,
    skull_base_extent_mm: float = 15.0,
    skull_base_gap_mm: float = 3.0,
    ico: int = 4,
    gap_mm: float = 1.0,
    smooth_iterations: int = 2,
    margin_mm: float = 0.05,
    max_iterations: int = 60,
) -> dict[str, Surface]:
    """Inner skull, outer skull and outer skin as icospheres fitted to the skull surfaces.

    The icosphere's directions (MNE order, see :func:`mne_icosphere`) are scaled by the
    radius maps interpolated at them (:func:`skullseg.radial.radius_at`) about
    ``surfaces.centre_world``, lightly smoothed on the icosphere (``smooth_iterations``
    Laplacian steps, for well-shaped triangles). With ``labels``, the outer skull first
    takes in the bone and air cells of the skull base that the cranium's outer surface
    leaves outside (the clivus, petrous bone, sphenoid and mastoid air): on rays that
    point below ``SKULL_BASE_MAX_DIR_Z``, it moves out over skull- and air-labelled voxels
    that continue it (:func:`skullseg.radial.extend_over_mask`), and the move is smoothed
    (outliers over 6 mm replaced by the local median); rays elsewhere keep their radius.
    Then the surfaces are pushed apart, inside out: the outer skull grows where any vertex
    of it or of the inner skull is closer than ``gap_mm + margin_mm`` (Euclidean, vertex to
    triangle) to the other surface, then the outer skin likewise against the outer skull.
    The radii stay ordered on every ray, so the surfaces never cross.

    Parameters
    ----------
    surfaces : SkullSurfaces
        Fitted radius maps (:func:`skullseg.skull.fit_skull_surfaces`).
    labels : Volume, optional
        The label map on the working grid (:mod:`skullseg.labels` values), for the skull
        base; ``None`` keeps the cranium's outer surface.
    skull_base_extent_mm : float
        How far (mm) the outer skull may move out at the skull base.
    skull_base_gap_mm : float
        The longest run (mm) of other tissue that the move out crosses.
    ico : int
        Subdivisions: 3 (642 vertices), 4 (2562, the MNE default) or 5 (10242; MNE warns
        above 10000 vertices, and its ico-5 order differs: use ``ico=None`` in MNE).
    gap_mm : float
        Minimum distance between inner and outer skull and between outer skull and skin.
    smooth_iterations : int
        Laplacian smoothing steps of the radii on the icosphere.
    margin_mm : float
        Added to ``gap_mm`` while pushing (vertex-to-triangle distances in both directions
        are a close, not exact, bound of the surface-to-surface distance).
    max_iterations : int
        Rounds of pushing per surface before giving up (``RuntimeError``).

    Returns
    -------
    dict of str to Surface
        ``"inner_skull"``, ``"outer_skull"``, ``"outer_skin"`` in world RAS mm, faces
        counter-clockwise seen from outside.

    Examples
    --------
    >>> from skullseg.pipeline import segment
    >>> surfs = bem_surfaces(segment(image).surfaces, ico=4)  # doctest: +SKIP
    >>> surfs["outer_skin"].vertices.shape  # doctest: +SKIP
    (2562, 3)
    """
    if ico not in (3, 4, 5):
        raise ValueError(f"ico must be 3, 4 or 5, got {ico}")
    if gap_mm <= 0:
        raise ValueError(f"gap_mm must be positive, got {gap_mm}")
    sphere = mne_icosphere(ico)
    dirs, faces = sphere.vertices, sphere.faces
    avg = _mean_neighbour_operator(faces, len(dirs))
    outer = surfaces.outer_mm
    if labels is not None and skull_base_extent_mm > 0:
        outer = _skull_base_outer(
            surfaces, labels, extent_mm=skull_base_extent_mm, gap_mm=skull_base_gap_mm
        )
    maps = (surfaces.inner_mm, outer, surfaces.scalp_mm)
    r_in, r_out, r_skin = (
        _smooth(radius_at(dirs, surfaces.grid, m), avg, smooth_iterations) for m in maps
    )
    target = gap_mm + margin_mm
    r_out = _push_out(dirs, faces, avg, r_in, r_out, target, max_iterations)
    r_skin = _push_out(dirs, faces, avg, r_out, r_skin, target, max_iterations)
    centre = np.asarray(surfaces.centre_world, dtype=np.float64)
    return {
        name: Surface(centre + dirs * r[:, None], faces.copy())
        for name, r in zip(BEM_NAMES, (r_in, r_out, r_skin))
    }


def _skull_base_outer(
    surfaces: SkullSurfaces, labels: Volume, *, extent_mm: float, gap_mm: float
) -> NDArray[np.float64]:
    """The outer skull's radius map, moved out over the skull base's bone and air."""
    grid, outer = surfaces.grid, np.asarray(surfaces.outer_mm, dtype=np.float64)
    hard = labels.with_data(np.isin(labels.data, [SKULL, AIR_CAVITY]).astype(np.float32))
    pushed = extend_over_mask(
        outer, hard, surfaces.centre_world, grid, extent_mm=extent_mm, gap_mm=gap_mm
    )
    # the move out, smoothed (outliers over 6 mm to the local median): rays elsewhere stay put
    moved = np.where(grid.directions[:, 2] < SKULL_BASE_MAX_DIR_Z, pushed - outer, 0.0)
    moved = robust_smooth_on_sphere(moved, grid, rings=2, tolerance_mm=6.0, iterations=2)
    return outer + np.maximum(moved, 0.0)


# -- output --------------------------------------------------------------------------------
def world_to_tkr(affine: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """4x4 matrix from world RAS to the FreeSurfer surface (tkr) RAS of an image.

    Examples
    --------
    >>> a = np.diag([1.0, 1, 1, 1]); a[:3, 3] = [-10, -20, -30]
    >>> world_to_tkr(a, (20, 40, 60))[:3, 3].tolist()
    [0.0, 0.0, 0.0]
    """
    affine = np.asarray(affine, dtype=np.float64)
    return vox2ras_tkr(affine, shape) @ np.linalg.inv(affine)


def _volume_info(affine: NDArray, shape: tuple[int, ...], filename: str) -> dict:
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    cosines = affine[:3, :3] / zooms
    c_ras = affine[:3, :3] @ (np.asarray(shape[:3], np.float64) / 2.0) + affine[:3, 3]
    return {
        "head": np.array([2, 0, 20], dtype=np.int32),
        "valid": "1  # volume info valid",
        "filename": filename,
        "volume": np.asarray(shape[:3], dtype=np.int64),
        "voxelsize": zooms,
        "xras": cosines[:, 0],
        "yras": cosines[:, 1],
        "zras": cosines[:, 2],
        "cras": c_ras,
    }


def _write_surf(path: Path, vertices: NDArray, faces: NDArray, volume_info: dict) -> Path:
    """FreeSurfer geometry with volume info, written atomically with reproducible bytes."""
    from nibabel.freesurfer import write_geometry

    with atomic_path(path, suffix=".surf") as tmp:
        write_geometry(
            tmp,
            vertices,
            faces.astype(np.int32),
            create_stamp="created by skullseg",
            volume_info=volume_info,
        )
    return path


def write_bem(
    surfs: dict[str, Surface],
    outdir: str | Path,
    input_affine: ArrayLike,
    input_shape: tuple[int, ...],
    *,
    volume_filename: str = "T1.mgz",
) -> list[Path]:
    """Write ``outdir/bem/{inner_skull,outer_skull,outer_skin}`` as .surf, .gii and .stl.

    ``.surf``: FreeSurfer geometry in the surface (tkr) RAS of the input image, the frame
    MNE reads (see the module notes), with volume info (grid, direction cosines and
    ``cras``, so ``world = tkr + cras``). ``.gii`` and ``.stl``: the same surfaces in world
    RAS mm. Every file is written atomically.

    Parameters
    ----------
    surfs : dict of str to Surface
        From :func:`bem_surfaces` (world RAS mm).
    outdir : str or Path
        The subject folder; files go to ``outdir / "bem"`` (created).
    input_affine, input_shape
        Affine and shape of the input image (the subject's T1).
    volume_filename : str
        Name recorded in the ``.surf`` volume info.

    Returns
    -------
    list of Path
        The nine files written.

    Examples
    --------
    >>> bem = bem_surfaces(result.surfaces)  # doctest: +SKIP
    >>> paths = write_bem(bem, "subjects/sample", t1.affine, t1.shape)  # doctest: +SKIP
    """
    affine = np.asarray(input_affine, dtype=np.float64)
    shape = tuple(int(s) for s in input_shape[:3])
    bem_dir = Path(outdir) / "bem"
    bem_dir.mkdir(parents=True, exist_ok=True)
    to_tkr = world_to_tkr(affine, shape)
    info = _volume_info(affine, shape, volume_filename)
    written = []
    for name in BEM_NAMES:
        s = surfs[name]
        tkr = s.vertices @ to_tkr[:3, :3].T + to_tkr[:3, 3]
        written.append(_write_surf(bem_dir / f"{name}.surf", tkr, s.faces, info))
        written.append(write_mesh(s, bem_dir / f"{name}.gii"))
        written.append(write_mesh(s, bem_dir / f"{name}.stl"))
    return written
