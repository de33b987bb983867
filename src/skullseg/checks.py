"""Plausibility checks on a result: warnings a user should read, and hard failures.

Each check is a small function returning messages. Soft checks become
warnings in ``report.json`` and on the console; hard checks make ``skullseg
run`` exit non-zero (unless ``--allow-implausible``), because such a result
is nonsense rather than merely inaccurate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import labels as L
from .volume import Volume

__all__ = ["CheckResult", "field_of_view_cuts", "check_result"]

_SIDES = {
    (0, 0): "right",
    (0, 1): "left",
    (1, 0): "posterior",
    (1, 1): "anterior",
    (2, 0): "inferior",
    (2, 1): "superior",
}


@dataclass
class CheckResult:
    """Messages from the checks: ``warnings`` (soft) and ``failures`` (hard)."""

    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    fov_cut_sides: list[str] = field(default_factory=list)


def field_of_view_cuts(mask: np.ndarray, *, min_fraction: float = 0.002) -> list[str]:
    """Sides of a RAS-aligned grid where ``mask`` touches the border.

    A side counts when more than ``min_fraction`` of the mask's voxels lie on
    that border face (so a single stray voxel does not count).

    Examples
    --------
    >>> m = np.zeros((10, 10, 10), bool); m[3:7, 3:7, 5:] = True
    >>> field_of_view_cuts(m)
    ['superior']
    """
    total = max(int(mask.sum()), 1)
    sides = []
    for axis in range(3):
        for end in (0, 1):
            index = 0 if end == 0 else mask.shape[axis] - 1
            face = np.take(mask, index, axis=axis)
            if face.sum() > min_fraction * total:
                sides.append(_SIDES[(axis, end)])
    return sides


def check_result(
    labels_work: Volume,
    *,
    thickness_median_mm: float | None = None,
    skull_ml_range: tuple[float, float] = (250.0, 1200.0),
    asymmetry_limit: float = 0.2,
) -> CheckResult:
    """Check a label map on the working grid (RAS-aligned, so axis 0 is left-right).

    Parameters
    ----------
    labels_work : Volume
        Labels on the RAS-aligned working grid.
    thickness_median_mm : float, optional
        Median skull thickness, checked against 2-12 mm.
    skull_ml_range : tuple of float
        Plausible skull volume when the whole skull is in the field of view.
    asymmetry_limit : float
        Largest accepted ``|L - R| / (L + R)`` of the skull volume about the
        brain's centre.
    """
    res = CheckResult()
    lab = labels_work.data
    ml = labels_work.voxel_volume_ml
    skull = lab == L.SKULL
    brain = lab == L.BRAIN
    skull_ml, brain_ml = float(skull.sum() * ml), float(brain.sum() * ml)
    head = lab > 0
    cut = field_of_view_cuts(head)
    res.fov_cut_sides = cut
    skull_cut = [s for s in field_of_view_cuts(skull | brain) if s != "inferior"]
    if skull_cut:
        res.warnings.append(
            "field of view cuts through the skull at the "
            f"{', '.join(skull_cut)} side: the skull there is missing and "
            "volumes are partial"
        )
    other = [s for s in cut if s != "inferior"]
    if other and not skull_cut:
        res.warnings.append(
            f"head touches the {', '.join(other)} edge of the field of view (head not centred)"
        )
    if brain_ml < 300:
        res.failures.append(f"brain volume {brain_ml:.0f} mL is implausible (< 300 mL)")
    if skull_ml < 50 or skull_ml > 2000:
        res.failures.append(f"skull volume {skull_ml:.0f} mL is implausible")
    elif not skull_cut and not (skull_ml_range[0] <= skull_ml <= skull_ml_range[1]):
        res.warnings.append(
            f"skull volume {skull_ml:.0f} mL is outside the usual "
            f"{skull_ml_range[0]:.0f}-{skull_ml_range[1]:.0f} mL"
        )
    if thickness_median_mm is not None and not 2.0 <= thickness_median_mm <= 12.0:
        res.warnings.append(
            f"median skull thickness {thickness_median_mm:.1f} mm is outside 2-12 mm"
        )
    from scipy import ndimage as ndi

    if np.any(ndi.binary_dilation(brain) & (lab == L.SCALP)):
        res.warnings.append("brain touches scalp somewhere: skull/CSF ordering violated")
    if brain.any() and skull.any() and not skull_cut:
        cx = int(round(np.nonzero(brain.any(axis=(1, 2)))[0].mean()))
        right = float(skull[cx:].sum())  # RAS: x grows toward the subject's right
        left = float(skull[:cx].sum())
        asym = abs(left - right) / max(left + right, 1.0)
        if asym > asymmetry_limit:
            res.warnings.append(
                f"skull is left-right asymmetric ({100 * asym:.0f}% volume "
                "difference between the halves)"
            )
    return res
