"""Synthetic head phantom with known truth: T1, T2, CT and labels on one grid.

The head is star-shaped around its centre: every tissue boundary is a radius
``R(u)`` along the unit direction ``u`` (brain, CSF, inner skull, diploë, outer
skull, scalp sub-layers), so the skull is a closed shell whose radial thickness
is known exactly. A neck column, a frontal sinus (enclosed by bone) and two eyes
are added on top. Images get partial volume from a linear ramp one projected
voxel wide across each boundary; labels sample the voxel centre.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import nibabel.orientations as nio
import numpy as np
from numpy.typing import NDArray

from skullseg import labels as lab
from skullseg.volume import Volume

__all__ = ["Phantom", "make_phantom", "reorient"]

#: tissue -> (T1, T2, CT in HU), before bias, noise and the x1000 MR scale.
TISSUES: dict[str, tuple[float, float, float]] = {
    "background": (0.0, 0.0, -1000.0),
    "wm": (1.0, 0.35, 35.0),
    "gm": (0.65, 0.5, 35.0),
    "csf": (0.15, 1.0, 8.0),
    "bone": (0.08, 0.05, 1500.0),
    "diploe": (0.55, 0.3, 600.0),
    "muscle": (0.55, 0.3, 40.0),
    "fat": (1.1, 0.7, -90.0),
    "skin": (0.6, 0.45, 40.0),
    "air": (0.03, 0.02, -1000.0),
    "vitreous": (0.15, 1.0, 10.0),
}
#: tissues between consecutive radii of :func:`_layer_radii_mm`, inside out.
_LAYERS = ("wm", "gm", "csf", "bone", "diploe", "bone", "muscle", "fat", "skin")
_MR_SCALE = 1000.0
_CT_NOISE_HU = 15.0
_GM_MM, _SKIN_MM, _SCALP_MM = 3.0, 1.5, 6.0
_TEMPORAL_DIR = np.array([0.97, 0.1, -0.2]) / np.linalg.norm([0.97, 0.1, -0.2])
_TEMPORAL_WIDTH_RAD, _SINUS_WIDTH_RAD = 0.35, 0.15
_NECK_TOP_MM, _NECK_AXES_MM, _NECK_Y_MM = -20.0, (52.0, 58.0), -15.0
_FOV_CENTRE_MM = (0.0, 5.0, -20.0)


@dataclass(frozen=True)
class Phantom:
    """A synthetic head: three images and the truth labels, all on one grid.

    Attributes
    ----------
    t1, t2 : Volume
        float32 T1- and T2-weighted images (Rician noise, bias field, ~0..1100).
    ct : Volume
        float32 CT-like image in Hounsfield units.
    labels : Volume
        uint8 truth with the values of :mod:`skullseg.labels` (0..5).
    """

    t1: Volume
    t2: Volume
    ct: Volume
    labels: Volume


@dataclass(frozen=True)
class _Shape:
    """The seed-drawn geometry of one head (world RAS mm)."""

    centre_mm: NDArray[np.float64]
    semi_axes_mm: tuple[float, float, float]
    floor_mm: float
    bumps: NDArray[np.float64]  # smooth random fields, see _draw_field
    csf: NDArray[np.float64]
    thickness: NDArray[np.float64]
    scalp: NDArray[np.float64]
    skull_thickness_mm: float
    thin_temporal_mm: float | None
    sinus_dir: NDArray[np.float64]
    sinus_radius_mm: float
    eye_radius_mm: float
    sinus_extra_mm: float = 0.0


def _draw_field(rng: np.random.Generator, n_terms: int, max_freq: float) -> NDArray[np.float64]:
    """Rows (dx, dy, dz, freq, phase, weight) of a smooth random field on the unit sphere."""
    dirs = rng.normal(size=(n_terms, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    freqs, phases = rng.uniform(1.0, max_freq, n_terms), rng.uniform(0.0, 2 * np.pi, n_terms)
    weights = rng.uniform(0.5, 1.0, n_terms)
    return np.column_stack([dirs, freqs, phases, weights / weights.sum()])


def _eval_field(field: NDArray, ux: NDArray, uy: NDArray, uz: NDArray) -> NDArray:
    """sum_j w_j cos(k_j (d_j . u) + phase_j), in [-1, 1]; keeps the dtype of ``u``."""
    out = np.zeros(np.broadcast_shapes(ux.shape, uy.shape, uz.shape), dtype=ux.dtype)
    for dx, dy, dz, k, phase, w in field.tolist():
        out += w * np.cos(k * (dx * ux + dy * uy + dz * uz) + phase)
    return out


def _smooth_min(a: NDArray, b: NDArray, k_mm: float) -> NDArray:
    h = np.clip(0.5 + 0.5 * (b - a) / k_mm, 0.0, 1.0)
    return b + (a - b) * h - k_mm * h * (1.0 - h)


def _bump(ux: NDArray, uy: NDArray, uz: NDArray, direction: NDArray, width_rad: float) -> NDArray:
    """exp(-angle^2 / 2 width^2) around ``direction``, via 1 - cos(angle) ~ angle^2 / 2."""
    dx, dy, dz = (float(v) for v in direction)
    cos = dx * ux + dy * uy + dz * uz
    return np.exp((cos - 1.0) / width_rad**2)


def _skull_thickness_mm(s: _Shape, ux: NDArray, uy: NDArray, uz: NDArray) -> NDArray:
    t_mm = s.skull_thickness_mm * (1.0 + 0.3 * _eval_field(s.thickness, ux, uy, uz))
    if s.thin_temporal_mm is not None:
        w = _bump(np.abs(ux), uy, uz, _TEMPORAL_DIR, _TEMPORAL_WIDTH_RAD)
        t_mm = t_mm + (s.thin_temporal_mm - t_mm) * w
    if s.sinus_extra_mm > 0:
        t_mm = t_mm + s.sinus_extra_mm * _bump(ux, uy, uz, s.sinus_dir, _SINUS_WIDTH_RAD)
    return t_mm


def _layer_radii_mm(s: _Shape, ux: NDArray, uy: NDArray, uz: NDArray) -> list[NDArray]:
    """Boundary radii along ``u``, inside out, one per entry of ``_LAYERS``."""
    a, b, c = s.semi_axes_mm
    r_ellipsoid = 1.0 / np.sqrt((ux / a) ** 2 + (uy / b) ** 2 + (uz / c) ** 2)
    r_floor = s.floor_mm / np.maximum(-uz, 1e-3)
    r_brain = _smooth_min(r_ellipsoid, r_floor, 8.0)
    r_brain = r_brain * (1.0 + 0.03 * _eval_field(s.bumps, ux, uy, uz))
    r_inner = r_brain + 2.25 + 0.75 * _eval_field(s.csf, ux, uy, uz)
    t_mm = _skull_thickness_mm(s, ux, uy, uz)
    diploe_mm = t_mm / 3.0 * np.clip(t_mm - 4.0, 0.0, 1.0)
    r_diploe = r_inner + (t_mm - diploe_mm) / 2.0
    r_outer = r_inner + t_mm
    r_skin = r_outer + _SCALP_MM + _eval_field(s.scalp, ux, uy, uz)
    r_fat = r_skin - _SKIN_MM - 0.4 * (r_skin - r_outer)
    radii = [r_brain - _GM_MM, r_brain, r_inner, r_diploe, r_diploe + diploe_mm, r_outer]
    return [*radii, r_fat, r_skin - _SKIN_MM, r_skin]


def _radii_along(s: _Shape, direction: NDArray) -> list[float]:
    u = [np.array([v]) for v in direction / np.linalg.norm(direction)]
    return [float(r[0]) for r in _layer_radii_mm(s, *u)]


def _draw_shape(
    rng: np.random.Generator, skull_thickness_mm: float, thin_temporal_mm: float | None
) -> _Shape:
    axes = np.array([65.0, 80.0, 60.0]) * (1.0 + np.clip(rng.normal(0.0, 0.03, 3), -0.06, 0.06))
    sinus_dir = np.array([rng.normal(0.0, 0.05), 1.0, 0.05])
    s = _Shape(
        centre_mm=rng.uniform(-2.0, 2.0, 3),
        semi_axes_mm=tuple(float(v) for v in axes),  # type: ignore[arg-type]
        floor_mm=float(0.78 * axes[2]),
        bumps=_draw_field(rng, 5, 4.0),
        csf=_draw_field(rng, 2, 2.5),
        thickness=_draw_field(rng, 4, 3.0),
        scalp=_draw_field(rng, 2, 2.5),
        skull_thickness_mm=float(skull_thickness_mm),
        thin_temporal_mm=None if thin_temporal_mm is None else float(thin_temporal_mm),
        sinus_dir=sinus_dir / np.linalg.norm(sinus_dir),
        sinus_radius_mm=float(rng.uniform(4.0, 6.0)),
        eye_radius_mm=float(rng.uniform(11.5, 12.5)),
    )
    radii = _radii_along(s, s.sinus_dir)
    need_mm = 2.0 * s.sinus_radius_mm + 8.0  # >= 4 mm of bone on each side of the sinus
    return replace(s, sinus_extra_mm=max(0.0, float(need_mm - (radii[5] - radii[2]))))


def _ramp(signed_mm: NDArray, inv_width: NDArray | float) -> NDArray:
    """Fraction of a voxel inside a boundary ``signed_mm`` away (positive inside)."""
    return np.clip(signed_mm * inv_width + 0.5, 0.0, 1.0)


def _neck(axes_mm: list[NDArray], vox_mm: NDArray) -> tuple[list[NDArray], NDArray]:
    """Neck images (3 contrasts) and its centre-sampled mask on the full grid."""
    x, y, z = axes_mm
    ax, ay = _NECK_AXES_MM
    rho = np.sqrt((x[:, None] / ax) ** 2 + ((y[None, :] - _NECK_Y_MM) / ay) ** 2)
    depth_mm = (1.0 - rho) * np.sqrt(ax * ay)  # approximate distance inside the outline
    top = _ramp(_NECK_TOP_MM - z, 1.0 / vox_mm[2])[None, None, :]
    inv_w = 1.0 / max(vox_mm[0], vox_mm[1])
    fracs = [_ramp(depth_mm - d, inv_w)[:, :, None] * top for d in (0.0, _SKIN_MM, 5.5)]
    seq = np.array([TISSUES[n] for n in ("background", "skin", "fat", "muscle")])
    bg, steps = seq[0].tolist(), np.diff(seq, axis=0).tolist()  # per boundary, per contrast
    images = [
        (bg[c] + sum(st[c] * f for st, f in zip(steps, fracs, strict=True))).astype(np.float32)
        for c in range(3)
    ]
    mask = (depth_mm > 0)[:, :, None] & (z < _NECK_TOP_MM)[None, None, :]
    return images, mask


def _render_head(
    s: _Shape, axes_mm: list[NDArray], vox_mm: NDArray, chunk: int = 12
) -> tuple[list[NDArray], NDArray]:
    """Head layers over the neck: three float32 images and uint8 labels (RAS grid)."""
    images, neck_mask = _neck(axes_mm, vox_mm)
    x, y, z = (a - c for a, c in zip(axes_mm, s.centre_mm.astype(np.float32), strict=True))
    labels = np.zeros(images[0].shape, np.uint8)
    values = [TISSUES[n] for n in _LAYERS]  # 9 x (T1, T2, CT)
    hx, hy, hz = (float(v) for v in vox_mm)
    for k0 in range(0, len(z), chunk):
        sl = np.s_[:, :, k0 : k0 + chunk]
        dx, dy, dz = x[:, None, None], y[None, :, None], z[None, None, k0 : k0 + chunk]
        r = np.maximum(np.sqrt(dx * dx + dy * dy + dz * dz), np.float32(1e-3))
        ux, uy, uz = dx / r, dy / r, dz / r
        inv_w = 1.0 / (np.abs(ux) * hx + np.abs(uy) * hy + np.abs(uz) * hz)
        radii = _layer_radii_mm(s, ux, uy, uz)
        fracs = [_ramp(rad - r, inv_w) for rad in radii]
        for c, img in enumerate(images):
            out = img[sl] * (1.0 - fracs[-1]) + values[-1][c] * fracs[-1]
            for k in range(len(_LAYERS) - 1):
                out += (values[k][c] - values[k + 1][c]) * fracs[k]
            img[sl] = out
        # nested shells: count how many boundaries (scalp|neck, outer, inner skull, brain) enclose
        lab_sl = ((r < radii[-1]) | neck_mask[sl]).astype(np.uint8)
        for i in (5, 2, 1):
            lab_sl += r < radii[i]
        labels[sl] = lab_sl
    return images, labels


def _paint_sphere(
    images: list[NDArray],
    labels: NDArray,
    axes_mm: list[NDArray],
    vox_mm: NDArray,
    centre_mm: NDArray,
    radius_mm: float,
    tissue: str,
    label: int,
    allowed: tuple[int, ...],
) -> None:
    """Blend a sphere of ``tissue`` into the voxels whose label is in ``allowed``."""
    box = tuple(
        slice(*np.searchsorted(a, [c - radius_mm - h, c + radius_mm + h]))
        for a, c, h in zip(axes_mm, centre_mm, vox_mm, strict=True)
    )
    d = [(a[b] - c) for a, b, c in zip(axes_mm, box, centre_mm, strict=True)]
    dx, dy, dz = d[0][:, None, None], d[1][None, :, None], d[2][None, None, :]
    dist = np.maximum(np.sqrt(dx * dx + dy * dy + dz * dz), 1e-3)
    width = (np.abs(dx) * vox_mm[0] + np.abs(dy) * vox_mm[1] + np.abs(dz) * vox_mm[2]) / dist
    ok = np.isin(labels[box], allowed)
    frac = _ramp(radius_mm - dist, 1.0 / width) * ok
    for img, value in zip(images, TISSUES[tissue], strict=True):
        img[box] = img[box] * (1.0 - frac) + value * frac
    labels[box][(dist < radius_mm) & ok] = label


def _add_sinus_and_eyes(
    s: _Shape, images: list[NDArray], labels: NDArray, axes_mm: list[NDArray], vox_mm: NDArray
) -> None:
    """Frontal sinus in the middle of the thickened frontal bone; eyes 2 mm outside the skull."""
    radii = _radii_along(s, s.sinus_dir)
    sinus_mm = s.centre_mm + s.sinus_dir * (radii[2] + radii[5]) / 2.0
    sinus = (sinus_mm, s.sinus_radius_mm, "air", lab.AIR_CAVITY, (lab.SKULL,))
    _paint_sphere(images, labels, axes_mm, vox_mm, *sinus)
    for side in (-1.0, 1.0):
        eye_dir = np.array([0.36 * side, 0.86, -0.36]) / np.linalg.norm([0.36, 0.86, -0.36])
        eye_mm = s.centre_mm + eye_dir * (_radii_along(s, eye_dir)[5] + s.eye_radius_mm + 2.0)
        eye = (eye_mm, s.eye_radius_mm, "vitreous", lab.SCALP, (lab.BACKGROUND, lab.SCALP))
        _paint_sphere(images, labels, axes_mm, vox_mm, *eye)


def _bias_field(rng: np.random.Generator, axes_mm: list[NDArray], amplitude: float) -> NDArray:
    """1 + amplitude * p(x, y, z), p a random low-order polynomial with |p| <= 1."""
    x, y, z = (((a - (a[0] + a[-1]) / 2) / max((a[-1] - a[0]) / 2, 1.0)) for a in axes_mm)
    x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]  # each in [-1, 1]
    coef = rng.uniform(-1.0, 1.0, 6)
    coef = (coef / np.abs(coef).sum()).tolist()
    terms = (x, y, z, x * y, y * z, 2.0 * z * z - 1.0)
    p = sum(c * t for c, t in zip(coef, terms, strict=True))
    return (1.0 + amplitude * p).astype(np.float32)


def _rician(rng: np.random.Generator, signal: NDArray, sigma: float) -> NDArray:
    n1 = rng.standard_normal(signal.shape, dtype=np.float32)
    n2 = rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt((signal + sigma * n1) ** 2 + (sigma * n2) ** 2)


def _ras_grid(
    voxel_size_mm: float | tuple[float, float, float], code: str, fov_mm: tuple[float, ...]
) -> tuple[list[NDArray], NDArray, NDArray]:
    """World axes (float32, RAS), RAS voxel sizes and affine of the grid centred on the FOV."""
    vox_mm = np.empty(3)
    vox_stored = np.broadcast_to(np.asarray(voxel_size_mm, dtype=np.float64), (3,))
    vox_mm[nio.axcodes2ornt(tuple(code))[:, 0].astype(int)] = vox_stored
    if np.any(vox_mm <= 0):
        raise ValueError(f"voxel sizes must be positive, got {voxel_size_mm!r}")
    n = np.maximum(np.round(np.asarray(fov_mm) / vox_mm).astype(int), 1)
    origin_mm = np.asarray(_FOV_CENTRE_MM) - vox_mm * (n - 1) / 2.0
    axes_mm = [(origin_mm[d] + vox_mm[d] * np.arange(n[d])).astype(np.float32) for d in range(3)]
    affine = np.diag([*vox_mm, 1.0])
    affine[:3, 3] = origin_mm
    return axes_mm, vox_mm, affine


def _check_axcodes(axcodes: str) -> str:
    code = axcodes.upper()
    axis = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}
    if len(code) != 3 or sorted(axis.get(ch, -1) for ch in code) != [0, 1, 2]:
        raise ValueError(f"orientation must be an axis code like 'RAS' or 'LPS', not {axcodes!r}")
    return code


def reorient(vol: Volume, axcodes: str) -> Volume:
    """Store ``vol`` in the axis order/direction ``axcodes``; world positions are unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.arange(24.0).reshape(2, 3, 4), np.eye(4))
    >>> w = reorient(v, "PIL")
    >>> w.shape
    (3, 4, 2)
    >>> bool(np.allclose(w.voxel_to_world([[0, 0, 0]]), [[1.0, 2.0, 3.0]]))
    True
    """
    target = nio.axcodes2ornt(tuple(_check_axcodes(axcodes)))
    transform = nio.ornt_transform(nio.io_orientation(vol.affine), target)
    data = np.ascontiguousarray(nio.apply_orientation(vol.data, transform))
    return Volume(data, vol.affine @ nio.inv_ornt_aff(transform, vol.shape))


def make_phantom(
    voxel_size_mm: float | tuple[float, float, float] = 1.5,
    *,
    seed: int = 0,
    skull_thickness_mm: float = 6.0,
    thin_temporal_mm: float | None = None,
    noise: float = 0.03,
    bias: float = 0.2,
    truncate_bottom_mm: float | None = None,
    orientation: str = "RAS",
    field_of_view_mm: tuple[float, float, float] = (200.0, 230.0, 220.0),
) -> Phantom:
    """Build a synthetic head with known truth labels.

    Parameters
    ----------
    voxel_size_mm : float or (3,) tuple
        Voxel edge lengths, in the STORED axis order of ``orientation``.
    seed : int
        Draws the shape perturbations and the noise. The shape does not depend on
        the voxel size, so one seed at two resolutions is the same head.
    skull_thickness_mm : float
        Vault thickness; it varies smoothly within 0.7x..1.3x. Where over 4 mm a
        diploë layer fills the middle third.
    thin_temporal_mm : float, optional
        Skull thickness at the centre of both temporal regions (smooth thinning).
    noise : float
        Rician sigma of the MR images as a fraction of the T1 white-matter level.
    bias : float
        Amplitude of the smooth multiplicative MR bias field (1 + bias * p, |p| <= 1).
    truncate_bottom_mm : float, optional
        Everything below this world z is set to background (cut-off FOV).
    orientation : str
        Storage axis code (nibabel convention), e.g. "RAS", "LPS", "PIR".
    field_of_view_mm : (3,) tuple
        Extent along world x (R-L), y (A-P), z (S-I), whatever the orientation.

    Returns
    -------
    Phantom
        T1, T2, CT (HU) float32 images and uint8 labels, all on one grid.

    Examples
    --------
    >>> p = make_phantom(4.0, seed=1)
    >>> sorted(int(v) for v in np.unique(p.labels.data))
    [0, 1, 2, 3, 4, 5]
    >>> p.t1.same_grid(p.labels)
    True
    """
    code = _check_axcodes(orientation)
    axes_mm, vox_mm, affine = _ras_grid(voxel_size_mm, code, field_of_view_mm)
    shape_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    s = _draw_shape(shape_rng, skull_thickness_mm, thin_temporal_mm)
    images, labels = _render_head(s, axes_mm, vox_mm)
    _add_sinus_and_eyes(s, images, labels, axes_mm, vox_mm)
    if truncate_bottom_mm is not None:
        keep = _ramp(axes_mm[2] - truncate_bottom_mm, 1.0 / float(vox_mm[2]))[None, None, :]
        for img, bg in zip(images, TISSUES["background"], strict=True):
            img[:] = img * keep + bg * (1.0 - keep)
        labels[:, :, axes_mm[2] < truncate_bottom_mm] = lab.BACKGROUND

    sigma = noise * TISSUES["wm"][0] * _MR_SCALE
    t1, t2 = (
        _rician(noise_rng, img * (_MR_SCALE * _bias_field(noise_rng, axes_mm, bias)), sigma)
        for img in images[:2]
    )
    ct = images[2] + _CT_NOISE_HU * noise_rng.standard_normal(labels.shape, dtype=np.float32)
    vols = (Volume(a, affine) for a in (t1, t2, ct, labels))
    return Phantom(*(reorient(v, code) for v in vols))
