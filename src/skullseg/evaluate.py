"""Accuracy metrics: compare a segmentation with a reference, voxel- and surface-wise.

All comparisons happen in world space (RAS mm). A prediction stored on another
grid is first resampled (nearest neighbour) onto the reference grid, so images
of the same head in different orientations or resolutions compare correctly.

Surface metrics use the boundary voxels of each mask (mask voxels with at least
one 6-neighbour outside the mask) and Euclidean distances in mm between their
centres, honouring anisotropic voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from .geometry import points_to_mesh
from .volume import Volume

__all__ = [
    "resample_labels",
    "vault_mask",
    "surface_distances",
    "compare_masks",
    "evaluate",
    "vox2ras_tkr",
    "tkr_to_world",
    "read_freesurfer_surface",
    "surface_to_surface_distance",
]

_NAN = float("nan")


# -- resampling ------------------------------------------------------------------------------
def resample_labels(src: Volume, target: Volume) -> Volume:
    """Nearest-neighbour resampling of a label volume onto ``target``'s grid.

    Each target voxel centre is mapped through both affines into ``src`` voxel
    space and takes the label of the nearest source voxel; target voxels that
    fall outside the source grid get 0.

    Examples
    --------
    >>> import numpy as np
    >>> src = Volume(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), np.eye(4))
    >>> aff = np.diag([-1.0, 1, 1, 1]); aff[0, 3] = 1  # same world box, x axis flipped
    >>> resample_labels(src, Volume(np.zeros((2, 2, 2)), aff)).data[:, 0, 0].tolist()
    [4, 0]
    """
    if src.same_grid(target):
        return target.with_data(src.data.copy())
    to_src = np.linalg.inv(src.affine) @ target.affine
    rot, trans = to_src[:3, :3], to_src[:3, 3]
    ni, nj, nk = target.shape
    out = np.zeros(target.shape, dtype=src.data.dtype)
    ii, jj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    base = np.stack([ii.ravel(), jj.ravel()], axis=1) @ rot[:, :2].T + trans  # (ni*nj, 3)
    limits = np.array(src.shape)
    for k in range(nk):  # one target slice at a time keeps memory small
        idx = np.rint(base + k * rot[:, 2]).astype(np.int64)
        ok = np.all((idx >= 0) & (idx < limits), axis=1)
        vals = np.zeros(len(idx), dtype=src.data.dtype)
        vals[ok] = src.data[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        out[:, :, k] = vals.reshape(ni, nj)
    return Volume(out, target.affine)


# -- regions ---------------------------------------------------------------------------------
def vault_mask(mask: Volume, depth_mm: float = 70.0) -> Volume:
    """The skull vault region: every voxel within ``depth_mm`` below the top of ``mask``.

    Our benchmark defines the vault as "the part of the skull within 70 mm of its
    top": the top is the highest world z (superior) of any voxel centre of ``mask``, and
    the region holds all voxels of the grid whose centre has ``z >= top - depth_mm``.
    Pass the *reference* skull mask and apply the returned region to both the
    prediction and the reference, so both are cut by the same axial plane.

    Returns an all-False region when ``mask`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((1, 1, 10), bool); m[0, 0, 2:9] = True
    >>> vault_mask(Volume(m, np.eye(4)), depth_mm=3).data[0, 0].astype(int).tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    """
    inside = np.asarray(mask.data).astype(bool)
    if not inside.any():
        return mask.with_data(np.zeros(mask.shape, bool))
    z = np.broadcast_to(mask.world_coordinate(2), mask.shape)  # world z of every voxel centre
    return mask.with_data(z >= z[inside].max() - depth_mm - 1e-6)


# -- voxel masks -----------------------------------------------------------------------------
def _boundary(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Mask voxels with a 6-neighbour outside the mask (grid edges count as outside)."""
    eroded = ndimage.binary_erosion(mask, ndimage.generate_binary_structure(3, 1), border_value=0)
    return mask & ~eroded


def surface_distances(a: Volume, b: Volume) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Distances (mm) from each boundary voxel of ``a`` to ``b``'s boundary, and back.

    Both masks must be on the same grid (see :func:`resample_labels`). Distances
    come from :func:`scipy.ndimage.distance_transform_edt` with the voxel sizes
    as sampling, so anisotropic voxels are honoured (the grid axes are assumed
    orthogonal, as in any scanner image). If either mask is empty both arrays
    are empty.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 5, 5), bool); m[1:4, 1:4, 1:4] = True
    >>> ab, ba = surface_distances(Volume(m, np.eye(4)), Volume(m, np.eye(4)))
    >>> float(ab.max()), len(ab)
    (0.0, 26)
    """
    if not a.same_grid(b):
        raise ValueError("surface_distances needs both masks on the same grid")
    ma, mb = np.asarray(a.data).astype(bool), np.asarray(b.data).astype(bool)
    if not (ma.any() and mb.any()):
        return np.zeros(0), np.zeros(0)
    # Crop to the union's bounding box (+1 voxel): every boundary lies inside it,
    # so the distance transform stays exact while memory and time shrink.
    box = ndimage.find_objects((ma | mb).astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    ba_, bb_ = _boundary(ma[box]), _boundary(mb[box])
    zooms = a.zooms_mm
    to_b = ndimage.distance_transform_edt(~bb_, sampling=zooms)
    to_a = ndimage.distance_transform_edt(~ba_, sampling=zooms)
    return to_b[ba_], to_a[bb_]


def compare_masks(pred: Volume, truth: Volume) -> dict[str, float]:
    """Overlap, volume and surface agreement of two binary masks.

    ``pred`` is resampled onto ``truth``'s grid first when the grids differ.
    Keys: ``dice``, ``jaccard``, ``volume_ratio`` (pred / truth), ``assd_mm``
    (average symmetric surface distance), ``hd95_mm`` (the larger of the two
    directed 95th percentiles), ``nsd_1mm`` and ``nsd_2mm`` (normalised surface
    Dice: the share of boundary voxels of both masks within 1 / 2 mm of the
    other boundary), ``pred_ml`` (on pred's own grid) and ``truth_ml``.
    Undefined values (empty masks) are ``nan``.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((6, 6, 6), bool); m[1:5, 1:5, 1:5] = True
    >>> r = compare_masks(Volume(m, np.eye(4)), Volume(m, np.eye(4)))
    >>> r["dice"], r["assd_mm"], r["truth_ml"]
    (1.0, 0.0, 0.064)
    """
    pred_ml = float(np.count_nonzero(pred.data)) * pred.voxel_volume_ml
    if not pred.same_grid(truth):
        pred = resample_labels(pred.with_data(np.asarray(pred.data).astype(np.uint8)), truth)
    p, t = np.asarray(pred.data).astype(bool), np.asarray(truth.data).astype(bool)
    n_p, n_t, n_pt = int(p.sum()), int(t.sum()), int(np.count_nonzero(p & t))
    union = n_p + n_t - n_pt
    out = {
        "dice": 2.0 * n_pt / (n_p + n_t) if n_p + n_t else _NAN,
        "jaccard": n_pt / union if union else _NAN,
        "volume_ratio": n_p / n_t if n_t else _NAN,
    }
    d_pt, d_tp = surface_distances(pred.with_data(p), truth.with_data(t))
    both = np.concatenate([d_pt, d_tp])
    if both.size:
        hd95 = max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))
        out |= {
            "assd_mm": float(both.mean()),
            "hd95_mm": float(hd95),
            "nsd_1mm": float(np.mean(both <= 1.0 + 1e-6)),
            "nsd_2mm": float(np.mean(both <= 2.0 + 1e-6)),
        }
    else:
        out |= {"assd_mm": _NAN, "hd95_mm": _NAN, "nsd_1mm": _NAN, "nsd_2mm": _NAN}
    out |= {"pred_ml": pred_ml, "truth_ml": n_t * truth.voxel_volume_ml}
    return {k: float(v) for k, v in out.items()}


def evaluate(
    pred_labels: Volume,
    truth_labels: Volume,
    pred_label: int | Sequence[int] = 2,
    truth_label: int | Sequence[int] = 2,
    region: str = "whole",
    vault_depth_mm: float = 70.0,
) -> dict[str, float | str]:
    """Compare one structure of two label volumes, over the whole head or the vault.

    ``pred_label`` / ``truth_label`` select the structure in each volume (one
    value or several, e.g. ``(1, 2)``); their label schemes may differ. With
    ``region="vault"`` both masks are cut by :func:`vault_mask` of the truth mask
    (``vault_depth_mm`` below its top)
    (``pred_ml`` is then measured on the truth grid). Returns :func:`compare_masks`'s
    dict plus ``"region"``.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((8, 8, 8), np.uint8); lab[2:6, 2:6, 2:6] = 2
    >>> evaluate(Volume(lab, np.eye(4)), Volume(lab, np.eye(4)), region="vault")["dice"]
    1.0
    """
    if region not in ("whole", "vault"):
        raise ValueError(f"region must be 'whole' or 'vault', got {region!r}")
    pred = pred_labels.with_data(np.isin(pred_labels.data, np.atleast_1d(pred_label)))
    truth = truth_labels.with_data(np.isin(truth_labels.data, np.atleast_1d(truth_label)))
    if region == "vault":
        if not pred.same_grid(truth):
            pred = resample_labels(pred.with_data(pred.data.view(np.uint8)), truth)
        keep = vault_mask(truth, vault_depth_mm).data
        pred, truth = (
            truth.with_data(pred.data.astype(bool) & keep),
            truth.with_data(truth.data & keep),
        )
    result: dict[str, float | str] = dict(compare_masks(pred, truth))
    result["region"] = region
    return result


# -- FreeSurfer surfaces ---------------------------------------------------------------------
def vox2ras_tkr(affine: ArrayLike, shape: Sequence[int]) -> NDArray[np.float64]:
    """FreeSurfer's voxel -> "surface RAS" (tkr RAS) matrix of a volume.

    Same rotation and voxel sizes as ``affine``, translated so that voxel
    ``shape / 2`` maps to the origin (as ``MGHHeader.get_vox2ras_tkr``).

    Examples
    --------
    >>> lia = np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])
    >>> vox2ras_tkr(lia, (256, 256, 256))[:3, 3].tolist()
    [128.0, -128.0, 128.0]
    """
    tkr = np.array(affine, dtype=np.float64)
    tkr[:3, 3] = -tkr[:3, :3] @ (np.asarray(shape[:3], dtype=np.float64) / 2.0)
    return tkr


def tkr_to_world(affine: ArrayLike, shape: Sequence[int]) -> NDArray[np.float64]:
    """4x4 matrix taking surface (tkr) RAS of a volume to its world RAS: ``A @ inv(tkr)``.

    Examples
    --------
    >>> a = np.diag([1.0, 1, 1, 1]); a[:3, 3] = [-10, -20, -30]
    >>> tkr_to_world(a, (20, 40, 60))[:3, 3].tolist()
    [0.0, 0.0, 0.0]
    """
    affine = np.asarray(affine, dtype=np.float64)
    return affine @ np.linalg.inv(vox2ras_tkr(affine, shape))


def read_freesurfer_surface(
    path: str | Path, reference: Volume | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Read a FreeSurfer surface and return ``(vertices in world RAS mm, faces)``.

    FreeSurfer stores vertices in the surface (tkr) RAS of the volume the surface
    was made on. Pass that volume as ``reference`` to convert exactly
    (:func:`tkr_to_world`); otherwise the ``cras`` of the file's volume info is
    added, and a file without one raises ``ValueError``.
    """
    import warnings

    from nibabel.freesurfer import read_geometry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No volume information contained in the file"
        vertices, faces, meta = read_geometry(str(path), read_metadata=True)
    vertices = np.asarray(vertices, dtype=np.float64)
    if reference is not None:
        m = tkr_to_world(reference.affine, reference.shape)
        vertices = vertices @ m[:3, :3].T + m[:3, 3]
    elif meta and "cras" in meta:
        vertices = vertices + np.asarray(meta["cras"], dtype=np.float64)
    else:
        raise ValueError(f"{path}: no volume info in the file; pass the reference volume")
    return vertices, np.asarray(faces, dtype=np.int64)


# -- mesh distances --------------------------------------------------------------------------
def surface_to_surface_distance(
    vertices_a: ArrayLike, faces_a: ArrayLike, vertices_b: ArrayLike, faces_b: ArrayLike
) -> dict[str, float]:
    """Distances between two triangle meshes in the same world space (mm).

    Each vertex of one mesh is measured to the nearest point of the other mesh's
    triangles (exact point-triangle distance). Keys: ``mean_a_to_b``,
    ``p95_a_to_b``, ``max_a_to_b``, the same ``*_b_to_a``, and ``mean_symmetric``
    / ``p95_symmetric`` over both directions pooled.

    Examples
    --------
    >>> v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]); f = np.array([[0, 1, 2]])
    >>> surface_to_surface_distance(v, f, v + [0, 0, 2], f)["mean_symmetric"]
    2.0
    """
    va, vb = np.asarray(vertices_a, np.float64), np.asarray(vertices_b, np.float64)
    fa, fb = np.asarray(faces_a, np.int64), np.asarray(faces_b, np.int64)
    ab, ba = points_to_mesh(va, vb, fb), points_to_mesh(vb, va, fa)
    both = np.concatenate([ab, ba])
    out = {}
    for name, d in (("a_to_b", ab), ("b_to_a", ba)):
        out |= {f"mean_{name}": d.mean(), f"p95_{name}": np.percentile(d, 95)}
        out[f"max_{name}"] = d.max()
    out |= {"mean_symmetric": both.mean(), "p95_symmetric": np.percentile(both, 95)}
    return {k: float(v) for k, v in out.items()}
