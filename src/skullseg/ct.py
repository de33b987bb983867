"""Head CT: scalp, skull, CSF, brain and air cavities from Hounsfield units.

CT measures bone directly, so the skull is a threshold rather than a model:

* head: above -500 HU, cut free from the scanner table and head holder by an
  opening (thin, flat structures go), closed and filled;
* bone: above the midpoint between soft tissue and the brightest bone nearby
  (a partial-volume voxel counts when it is more than half bone), plus the
  cancellous bone (diploë) inside it; metal (> 3000 HU) is clipped and thin
  isolated spokes (streak artefacts) are dropped;
* intracranial: the largest hole of the bone once a closing has sealed the
  foramen magnum and the orbits, grown back into the fossae and cut below the
  foramen magnum; CSF below midway between CSF (8 HU) and the brain's median
  HU, and in the partial-volume rim under the bone; the rest is brain;
* air cavities: below -400 HU inside the head, outside the cranial cavity.

Star-shaped inner skull, outer skull and scalp surfaces are fitted to the
masks along rays from the intracranial centroid, so meshes and BEM surfaces
work as for a T1. The masks are made in :mod:`skullseg.ct_masks` (importable
from here too); this module conforms, fits the surfaces and puts it together
(:func:`segment_ct`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from . import labels as L
from .conform import resample_to_grid, to_input_grid, working_grid
from .ct_masks import (
    METAL_HU,  # noqa: F401  (kept importable from skullseg.ct)
    csf_mask,
    ct_bone_mask,
    ct_head_mask,
    intracranial_mask,
)
from .errors import SkullsegError
from .morphology import opening
from .profiles import first_exit_after
from .profiles import last_crossing as _last_crossing
from .radial import robust_smooth_on_sphere, sample_profiles, sphere_grid
from .skull import SkullParams, SkullSurfaces, enforce_nesting
from .volume import Volume

if TYPE_CHECKING:
    from .pipeline import SegmentResult

__all__ = [
    "looks_like_ct",
    "conform_ct",
    "ct_head_mask",
    "ct_bone_mask",
    "labels_to_input_grid",
    "intracranial_mask",
    "ct_skull_surfaces",
    "segment_ct",
]

log = logging.getLogger("skullseg")


def looks_like_ct(vol: Volume) -> bool:
    """True when the image looks like a CT in Hounsfield units.

    A CT has negative values, a large share of voxels near -1000 HU (air,
    or padding below it outside the reconstruction circle) and some above
    +300 HU (bone). MR magnitude images have neither.

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> ph = make_phantom(4.0)
    >>> looks_like_ct(ph.ct), looks_like_ct(ph.t1)
    (True, False)
    """
    data = np.asarray(vol.data)
    sample = data.ravel()[:: max(1, data.size // 2_000_000)].astype(np.float32)
    if sample.size == 0 or float(sample.min()) > -500.0:
        return False
    air = float(np.mean(sample < -800.0))
    near_air = float(np.mean(np.abs(sample + 1000.0) < 200.0))
    bone = float(np.mean(sample > 300.0))
    return air >= 0.1 and near_air >= 0.05 and 0.0005 <= bone <= 0.3


def conform_ct(ct: Volume, voxel_mm: float = 1.0) -> Volume:
    """Resample a CT onto its RAS working grid with cubic interpolation (float32 HU).

    Cubic rather than linear interpolation keeps the peak HU of thin bone on
    a finer grid, so the half-bone threshold stays unbiased; values are
    clipped to the input range (no overshoot).

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.full((4, 4, 4), -1000.0, np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> conform_ct(v).shape
    (8, 8, 8)
    """
    lo, hi = float(np.min(ct.data)), float(np.max(ct.data))
    out = resample_to_grid(ct, working_grid(ct, voxel_mm), order=3, cval=lo)
    return out.with_data(np.clip(out.data, lo, hi).astype(np.float32))


def labels_to_input_grid(
    labels: Volume, bone_score: NDArray[np.float32], input_grid: Volume
) -> Volume:
    """Working-grid labels on the input grid, the skull from its sub-voxel boundary.

    Where the input voxels are coarser than the working voxels, the skull is
    where the linearly resampled ``bone_score`` is positive, and the other
    labels are voted (:func:`~skullseg.conform.to_input_grid`) on a map whose
    skull voxels took the nearest other label; otherwise nearest neighbour.
    """
    if min(input_grid.zooms_mm) <= labels.zooms_mm[0] * 1.01:
        return to_input_grid(labels, input_grid)
    lab = labels.data
    skull = lab == L.SKULL
    nearest = ndi.distance_transform_edt(skull, return_distances=False, return_indices=True)
    others = to_input_grid(labels.with_data(lab[tuple(nearest)]), input_grid)
    score = resample_to_grid(labels.with_data(bone_score), input_grid, order=1, cval=-1.0)
    return others.with_data(np.where(score.data > 0, L.SKULL, others.data).astype(np.uint8))


def _first_true_after(mask: NDArray[np.bool_], start: NDArray[np.int64]) -> NDArray[np.int64]:
    """Index of the first True at or after ``start`` along axis 1 (-1 where none)."""
    cols = np.arange(mask.shape[1])[None, :]
    hit = mask & (cols >= start[:, None])
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), -1)


def ct_skull_surfaces(
    work: Volume,
    head: NDArray[np.bool_],
    bone: NDArray[np.bool_],
    intracranial: NDArray[np.bool_],
    params: SkullParams | None = None,
) -> SkullSurfaces:
    """Nested star-shaped inner skull, outer skull and scalp from CT masks.

    Along rays from the intracranial centroid: the intracranial envelope is
    the last cavity sample; the inner skull is the first bone sample from
    1 mm inside that envelope on (the envelope itself where no bone follows
    within ``max_skull_thickness_mm``, e.g. the foramen magnum); the outer
    skull ends that first bone run (at most ``max_skull_thickness_mm`` thick);
    the scalp is the first exit from the head beyond it. Each map is made
    robust on the sphere and smoothed, then the three are nested.
    """
    p = params or SkullParams()
    grid = sphere_grid(p.subdivisions)
    centre = work.voxel_to_world(np.argwhere(intracranial).mean(axis=0)[None])[0]
    radii = np.arange(0.0, p.max_radius_mm, p.step_mm)
    step = p.step_mm

    def prof(mask: NDArray[np.bool_]) -> NDArray[np.float32]:
        return sample_profiles(work.with_data(mask.astype(np.float32)), centre, grid, radii)

    ic_prof, bone_prof, head_prof = prof(intracranial), prof(bone) >= 0.5, prof(head) > 0.5
    env = _last_crossing(ic_prof, radii, 0.5)
    env = np.where(np.isfinite(env), env, np.nanmedian(env))
    env = robust_smooth_on_sphere(env, grid, rings=2, tolerance_mm=4.0, iterations=2)
    start = np.clip(((env - 1.0) / step).astype(np.int64), 0, len(radii) - 1)
    first = _first_true_after(bone_prof, start)
    max_n = int(round(p.max_skull_thickness_mm / step))
    found = (first >= 0) & (first - start <= max_n)
    inner = np.where(found, radii[np.maximum(first, 0)] - 0.5 * step, env)
    inner = robust_smooth_on_sphere(inner, grid, rings=2, tolerance_mm=3.0, iterations=3)
    # outer: end of the first bone run, at most max thickness beyond its start
    after = ~bone_prof & (np.arange(len(radii))[None, :] > first[:, None])
    end = _first_true_after(after, np.maximum(first, 0))
    thick = np.where(end >= 0, (end - first) * step, p.max_skull_thickness_mm)
    thick = np.clip(thick, p.min_skull_thickness_mm, p.max_skull_thickness_mm)
    thick = np.where(found, thick, np.median(thick[found]) if found.any() else 6.0)
    thick = robust_smooth_on_sphere(thick, grid, rings=2, tolerance_mm=3.0, iterations=3)
    outer = inner + thick
    scalp = first_exit_after(head_prof, radii, outer)
    scalp = robust_smooth_on_sphere(scalp, grid, rings=1, tolerance_mm=6.0, iterations=1)
    inner, outer, scalp = enforce_nesting(
        inner, outer, scalp, p.min_skull_thickness_mm, p.min_scalp_thickness_mm
    )
    brain = np.minimum(env, inner)
    n_open = int(np.sum(~found))
    log.info(
        "ct skull surfaces: thickness median %.1f mm, %d rays without bone",
        np.median(thick),
        n_open,
    )
    return SkullSurfaces(
        centre, grid, brain, inner, outer, scalp, info={"rays_without_bone": n_open}
    )


def segment_ct(
    ct: Volume,
    *,
    bone_hu: float = 300.0,
    voxel_mm: float = 1.0,
    params: SkullParams | None = None,
) -> SegmentResult:
    """Segment skull, scalp, CSF, brain and air cavities from a head CT in Hounsfield units.

    Same label contract (:mod:`skullseg.labels`) and working grid as the T1
    pipeline: the CT is conformed to ``voxel_mm`` RAS, segmented there, and the
    labels are brought back to the input grid.

    Parameters
    ----------
    ct : Volume
        Head CT in HU, any orientation and voxel size.
    bone_hu : float
        Lowest HU that can be bone (cancellous bone, thin partial-volume bone).
    voxel_mm : float
        Working resolution in mm.
    params : SkullParams
        Thickness bounds of the fitted surfaces.

    Returns
    -------
    SegmentResult
        As :func:`skullseg.pipeline.segment`; ``labels`` is on the input grid.
        The skull label is the bone mask itself (facial bones, mandible and
        vertebrae included); ``surfaces`` are the star-shaped cranial surfaces.

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> result = segment_ct(make_phantom(2.0).ct)  # doctest: +SKIP
    >>> result.labels.shape  # doctest: +SKIP
    (100, 115, 110)
    """
    from .pipeline import SegmentResult

    timings: dict[str, float] = {}
    warnings: list[str] = []

    def tick(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 2)
        return time.perf_counter()

    t0 = time.perf_counter()
    hint = "" if looks_like_ct(ct) else " (the image does not look like a CT in Hounsfield units)"
    if hint:
        warnings.append(hint[2:-1])
    work = conform_ct(ct, voxel_mm)
    if max(ct.zooms_mm) > 2.5:
        warnings.append(
            f"thick slices ({max(ct.zooms_mm):.1f} mm): thin bone is blurred along the slices"
        )
    t0 = tick("conform", t0)
    head = ct_head_mask(work)
    t0 = tick("head mask", t0)
    bone, bone_score = ct_bone_mask(work, head, bone_hu=bone_hu)
    if bone.sum() * work.voxel_volume_ml < 50.0:
        raise SkullsegError(f"no skull found in the CT{hint or ' (is it a head CT?)'}")
    t0 = tick("bone", t0)
    ic = intracranial_mask(work, head, bone)
    if ic.sum() * work.voxel_volume_ml < 300.0:
        raise SkullsegError(
            f"no cranial cavity found in the CT{hint or ' (is the whole skull in view?)'}"
        )
    bone &= ~ic  # calcifications inside the cavity are not skull
    bone_score[ic] = np.minimum(bone_score[ic], -1.0)
    t0 = tick("intracranial", t0)
    surfaces = ct_skull_surfaces(work, head, bone, ic, params)
    t0 = tick("skull surfaces", t0)
    vox = work.zooms_mm[0]
    csf = csf_mask(work, ic, bone)
    hu = ndi.gaussian_filter(work.data, 0.7 / vox)
    air = (hu < -400.0) & head & ~ic & ~bone
    air = opening(air, 1.0, vox)
    lab = np.zeros(work.shape, np.uint8)
    lab[head] = L.SCALP
    lab[air] = L.AIR_CAVITY
    lab[bone] = L.SKULL
    lab[ic] = L.BRAIN
    lab[csf] = L.CSF
    lab_work = work.with_data(lab)
    lab_in = labels_to_input_grid(lab_work, bone_score, ct)
    tick("labels", t0)
    return SegmentResult(
        labels=lab_in,
        labels_work=lab_work,
        image_work=work,
        surfaces=surfaces,
        timings_s=timings,
        warnings=warnings,
    )
