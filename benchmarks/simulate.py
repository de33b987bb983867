"""Simulate T1-, T2- and CT-like head images with exact truth from the New York head labels.

The 0.5 mm label volume (1 WM, 2 GM, 3 CSF, 4 bone, 5 skin/soft tissue, 6 air)
is turned, for one random seed, into images on a coarser grid (1 mm by default):

* tissue classes at 0.5 mm; air connected to the outside becomes background,
  enclosed background becomes air cavity;
* partial volume: the share of each class inside every target voxel (the
  2x2x2 block at 1 mm; sub-samples on a rotated grid);
* sub-tissues: diploe (bone deeper than ~1.5 mm from both bone surfaces, a
  ramp over 1 mm, so only thick bone has it) and fat blobs in the soft tissue
  below the skin;
* per-tissue means jittered by +-10 % per seed, a smooth within-tissue
  texture, a smooth multiplicative bias field (MR), Rician (MR) or Gaussian
  (CT) noise;
* a random storage orientation (axis permutation and flips; the affine keeps
  world coordinates unchanged) and, optionally, a small random rotation.

Truth (skullseg labels): 0 background, 1 scalp, 2 skull, 3 CSF, 4 brain, 5 air
cavity: the majority class of each target voxel.

Usage::

    python benchmarks/simulate.py --seed 0 --out /tmp/sim0 [--voxel-mm 1.0] [--contrast t1 t2 ct]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff
from numpy.typing import NDArray
from scipy import ndimage

from skullseg.volume import Volume

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SKULLSEG_DATA", REPO.parent / "shared" / "data"))
LABELS_PATH = DATA / "labels_only" / "nyhead_labels_0.5mm.nii.gz"

# Fine classes (0.5 mm): the NY head labels, with 0 = outside air and 6 = enclosed air.
BG, WM, GM, CSF, BONE, SOFT, CAVITY = range(7)
N_CLASSES = 7
#: fine class -> skullseg truth label (0 bg, 1 scalp, 2 skull, 3 csf, 4 brain, 5 air cavity)
TRUTH_OF_CLASS = np.array([0, 4, 4, 3, 2, 1, 5], np.uint8)

# Tissue (mean, spread). MR spreads are relative to the mean, CT spreads in HU.
TISSUES = ("bg", "wm", "gm", "csf", "bone", "diploe", "soft", "fat", "cavity")
CONTRASTS: dict[str, dict[str, tuple[float, float]]] = {
    "t1": {
        "bg": (0.0, 0.0), "wm": (1.0, 0.03), "gm": (0.65, 0.05), "csf": (0.15, 0.10),
        "bone": (0.10, 0.30), "diploe": (0.50, 0.15), "soft": (0.70, 0.08),
        "fat": (1.05, 0.05), "cavity": (0.02, 0.5),
    },
    "t2": {
        "bg": (0.0, 0.0), "wm": (0.35, 0.04), "gm": (0.50, 0.05), "csf": (1.0, 0.05),
        "bone": (0.05, 0.30), "diploe": (0.30, 0.15), "soft": (0.40, 0.10),
        "fat": (0.70, 0.06), "cavity": (0.02, 0.5),
    },
    "ct": {
        "bg": (-1000.0, 5.0), "wm": (30.0, 4.0), "gm": (40.0, 4.0), "csf": (8.0, 4.0),
        "bone": (1200.0, 150.0), "diploe": (500.0, 120.0), "soft": (40.0, 12.0),
        "fat": (-90.0, 15.0), "cavity": (-1000.0, 10.0),
    },
}  # fmt: skip


# -- tissue classes ------------------------------------------------------------------------
def fine_classes(labels: NDArray) -> NDArray[np.uint8]:
    """NY head labels -> fine classes: outside-connected air is BG, enclosed BG is CAVITY."""
    classes = np.asarray(labels, dtype=np.uint8).copy()
    classes[classes > CAVITY] = BG
    airlike = (classes == BG) | (classes == CAVITY)
    cc, n = ndimage.label(airlike)
    del airlike
    faces = [cc[0], cc[-1], cc[:, 0], cc[:, -1], cc[:, :, 0], cc[:, :, -1]]
    outside = np.zeros(n + 1, bool)
    outside[np.unique(np.concatenate([f.ravel() for f in faces]))] = True
    outside[0] = False
    is_out = outside[cc]
    del cc
    classes[is_out] = BG
    classes[(classes == BG) & ~is_out] = CAVITY
    return classes


def block_counts(classes: NDArray[np.uint8], f: int) -> NDArray[np.uint8]:
    """Class counts in each f x f x f block: shape (N_CLASSES, I//f, J//f, K//f)."""
    shape = tuple(s // f for s in classes.shape)
    counts = np.zeros((N_CLASSES, *shape), np.uint8)
    for a in range(f):
        for b in range(f):
            for c in range(f):
                view = classes[a : shape[0] * f : f, b : shape[1] * f : f, c : shape[2] * f : f]
                for k in range(N_CLASSES):
                    counts[k] += view == k
    return counts


def sampled_counts(
    classes: NDArray[np.uint8], fine_affine: NDArray, affine: NDArray, shape: Sequence[int], n: int
) -> NDArray[np.uint8]:
    """Class counts at n^3 sub-samples of each voxel of any target grid (nearest fine voxel)."""
    to_fine = np.linalg.inv(fine_affine) @ affine
    offsets = (np.arange(n) + 0.5) / n - 0.5
    subs = np.stack(np.meshgrid(offsets, offsets, offsets), -1).reshape(-1, 3)
    counts = np.zeros((N_CLASSES, *shape), np.uint8)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    limits = np.array(classes.shape)
    for k in range(shape[2]):
        for o in subs:
            ijk = np.stack([ii + o[0], jj + o[1], np.full(ii.shape, k + o[2])], -1)
            idx = np.rint(ijk @ to_fine[:3, :3].T + to_fine[:3, 3]).astype(np.int64)
            ok = np.all((idx >= 0) & (idx < limits), axis=-1)
            cls = np.zeros(ii.shape, np.uint8)
            cls[ok] = classes[idx[ok][:, 0], idx[ok][:, 1], idx[ok][:, 2]]
            for c in range(N_CLASSES):
                counts[c, :, :, k] += cls == c
    return counts


def rotated_grid(
    fine_affine: NDArray, box: Sequence[slice], voxel_mm: float, angles: NDArray
) -> tuple[NDArray, tuple[int, int, int]]:
    """A voxel_mm grid rotated by Euler ``angles`` (rad) covering the fine voxel ``box``."""
    rot = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        r = np.eye(3)
        a, b = [i for i in range(3) if i != axis]
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
        rot = r @ rot
    corners = np.array(np.meshgrid(*[[b.start, b.stop - 1] for b in box])).reshape(3, -1).T
    world = corners @ fine_affine[:3, :3].T + fine_affine[:3, 3]
    local = world @ rot  # coordinates along the rotated axes
    lo, hi = local.min(0), local.max(0)
    shape = tuple(int(v) for v in np.ceil((hi - lo) / voxel_mm) + 1)
    affine = np.eye(4)
    affine[:3, :3] = rot * voxel_mm
    affine[:3, 3] = rot @ lo
    return affine, shape  # type: ignore[return-value]


#: Anatomy variants (``simulate_head``'s ``anatomy``): the NY head changed at 0.5 mm, to
#: check that nothing is tuned to its proportions.
ANATOMY = {
    "atrophy": "brain within 1.5 mm of CSF becomes CSF (wider sulci, ventricles and CSF layer)",
    "thin-skull": "bone within 1 mm of soft tissue becomes soft tissue (outer table thinner)",
    "thick-skull": "soft tissue within 1.5 mm of bone becomes bone (skull thicker outwards)",
}


def change_anatomy(classes: NDArray[np.uint8], variant: str, fine_mm: float) -> NDArray[np.uint8]:
    """One of :data:`ANATOMY`'s variants of the fine classes (a changed copy)."""

    def within(mask: NDArray[np.bool_], mm: float) -> NDArray[np.bool_]:
        return ndimage.distance_transform_edt(~mask, sampling=fine_mm) <= mm

    out = classes.copy()
    if variant == "atrophy":
        out[((classes == WM) | (classes == GM)) & within(classes == CSF, 1.5)] = CSF
    elif variant == "thin-skull":
        out[(classes == BONE) & within(classes == SOFT, 1.0)] = SOFT
    elif variant == "thick-skull":
        out[(classes == SOFT) & within(classes == BONE, 1.5)] = BONE
    else:
        raise ValueError(f"unknown anatomy {variant!r} (one of {', '.join(ANATOMY)})")
    return out


# -- smooth random fields ------------------------------------------------------------------
def smooth_noise(rng: np.random.Generator, shape: Sequence[int], coarse: int) -> NDArray:
    """Unit-std smooth noise: white noise on a grid ``coarse`` times smaller, blurred, upsampled."""
    small = tuple(max(2, s // coarse) for s in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(small, dtype=np.float32), 1.0)
    if coarse > 1:
        field = ndimage.zoom(field, [s / m for s, m in zip(shape, small, strict=True)], order=1)
        field = field[: shape[0], : shape[1], : shape[2]]
    return (field - field.mean()) / (field.std() + 1e-6)


def bias_field(rng: np.random.Generator, shape: Sequence[int], strength: float) -> NDArray:
    """Smooth multiplicative field exp(strength * sum of low-order cosines), unit-std exponent."""
    bases = [np.cos(np.pi * np.outer(np.arange(3), np.linspace(0, 1, s))) for s in shape]
    w = rng.standard_normal((3, 3, 3))
    w[0, 0, 0] = 0.0
    field = np.einsum("abc,ai,bj,ck->ijk", w, *bases, optimize=True).astype(np.float32)
    field /= field.std() + 1e-6
    return np.exp(strength * field, dtype=np.float32)


# -- images --------------------------------------------------------------------------------
def tissue_fractions(counts: NDArray[np.uint8], zooms: Sequence[float], rng: np.random.Generator):
    """Per-tissue fractions (float32 generators) including diploe and fat sub-tissues."""
    n = float(counts[:, 0, 0, 0].sum())  # sub-samples per voxel
    bone = counts[BONE] >= n / 2
    depth = ndimage.distance_transform_edt(bone, sampling=zooms).astype(np.float32)
    depth -= 0.5 * float(min(zooms))  # voxel centre to surface
    diploe = np.clip(depth - 1.5, 0.0, 1.0)
    head = counts[BG] < n / 2
    below_skin = ndimage.distance_transform_edt(head, sampling=zooms) > 2.0
    fat = below_skin / (1.0 + np.exp(-(smooth_noise(rng, counts.shape[1:], 4) - 0.3) / 0.15))
    fat = fat.astype(np.float32)
    pairs = (("bg", BG), ("wm", WM), ("gm", GM), ("csf", CSF), ("cavity", CAVITY))
    frac = {name: counts[c].astype(np.float32) / n for name, c in pairs}
    b, s = counts[BONE].astype(np.float32) / n, counts[SOFT].astype(np.float32) / n
    frac |= {"bone": b * (1 - diploe), "diploe": b * diploe, "soft": s * (1 - fat), "fat": s * fat}
    return frac


def synthesize(
    contrast: str,
    frac: dict,
    texture: NDArray,
    rng: np.random.Generator,
    *,
    means: dict[str, float] | None = None,
    bias_range: tuple[float, float] = (0.08, 0.2),
    noise_range: tuple[float, float] = (0.015, 0.035),
) -> tuple[NDArray, dict]:
    """One image from tissue fractions: jittered means, texture, bias field, noise.

    ``means`` replaces tissue means of the contrast's table (before the per-seed jitter);
    ``bias_range`` and ``noise_range`` bound the MR bias strength and the noise sigma (a
    share of the brightest tissue mean). Other values draw the same random numbers, so a
    seed's variants differ only in what was changed.
    """
    table = dict(CONTRASTS[contrast])
    for name, mu in (means or {}).items():
        if name not in table:
            raise ValueError(f"unknown tissue {name!r} (one of {', '.join(TISSUES)})")
        table[name] = (float(mu), table[name][1])
    ct = contrast == "ct"
    mean = np.zeros(texture.shape, np.float32)
    spread = np.zeros(texture.shape, np.float32)
    used = {}
    for name in TISSUES:
        mu, sd = table[name]
        fixed = ct and name in ("bg", "cavity")  # HU of air is calibrated
        mu = mu if fixed else mu * rng.uniform(0.9, 1.1)
        sd = sd if ct else sd * mu
        used[name] = round(float(mu), 4)
        mean += frac[name] * np.float32(mu)
        spread += frac[name] * np.float32(sd)
    img = mean + spread * texture
    del mean, spread
    if ct:
        sigma = rng.uniform(5.0, 15.0)
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
        return img, {"means": used, "noise_hu": sigma}
    strength = rng.uniform(*bias_range)
    img *= bias_field(rng, img.shape, strength)
    sigma = np.float32(rng.uniform(*noise_range) * max(used.values()))
    real = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
    img = np.hypot(real, rng.standard_normal(img.shape, dtype=np.float32) * sigma)  # Rician
    gain = rng.uniform(500, 2000)
    img *= np.float32(gain)
    return img, {
        "means": used,
        "bias_strength": strength,
        "noise_sigma": float(sigma),
        "gain": gain,
    }


def simulate_head(
    labels_path: str | Path = LABELS_PATH,
    seed: int = 0,
    voxel_mm: float = 1.0,
    contrasts: Sequence[str] = ("t1",),
    rotate_deg: float = 0.0,
    reorient: bool = True,
    params: dict | None = None,
    *,
    t1_means: dict[str, float] | None = None,
    anatomy: str | None = None,
    scale: float | Sequence[float] = 1.0,
    bias_range: tuple[float, float] = (0.08, 0.2),
    noise_range: tuple[float, float] = (0.015, 0.035),
) -> dict[str, Volume]:
    """Simulate one head: ``{contrast: image Volume (float32), "truth_labels": uint8 Volume}``.

    ``rotate_deg`` > 0 rotates the grid by up to that many degrees about each
    axis; ``reorient`` stores the data in a random axis order with random flips.
    The random draws are recorded in ``params`` when a dict is given.
    ``t1_means`` replaces tissue means of the T1 (``synthesize``'s ``means``);
    ``bias_range`` and ``noise_range`` bound every MR contrast's bias and noise.
    ``anatomy`` names one of :data:`ANATOMY`'s changes to the head; ``scale`` makes the
    whole head that many times larger (its 0.5 mm voxels become ``0.5 * scale`` mm:
    brain, CSF, skull and scalp all scale together); three values scale the labels'
    three axes apart (a longer or narrower head).
    """
    rng = np.random.default_rng(seed)
    img = nib.load(str(labels_path))
    factors = np.broadcast_to(np.asarray(scale, float), (3,))
    fine_affine = img.affine @ np.diag([*factors, 1.0])
    classes = fine_classes(np.asarray(img.dataobj, dtype=np.uint8))
    fine_mm = float(np.sqrt((fine_affine[:3, :3] ** 2).sum(0)).mean())
    if anatomy:
        classes = change_anatomy(classes, anatomy, fine_mm)
    factor = voxel_mm / fine_mm
    angles = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, 3))
    whole = abs(factor - round(factor)) < 1e-6 and round(factor) >= 1
    if rotate_deg <= 0 and whole and np.allclose(factors, factors[0]):
        f = int(round(factor))
        counts = block_counts(classes, f)
        affine = fine_affine @ np.array(
            [[f, 0, 0, (f - 1) / 2], [0, f, 0, (f - 1) / 2], [0, 0, f, (f - 1) / 2], [0, 0, 0, 1]]
        )
    else:
        head = ndimage.find_objects((classes != BG).view(np.uint8))[0]
        box = [slice(max(b.start - 8, 0), b.stop + 8) for b in head]  # 4 mm margin
        affine, shape = rotated_grid(fine_affine, box, voxel_mm, angles)
        counts = sampled_counts(classes, fine_affine, affine, shape, max(2, round(factor)))
    del classes
    zooms = Volume(counts[0], affine).zooms_mm
    truth = _majority(counts)
    frac = tissue_fractions(counts, zooms, rng)
    del counts
    texture = 0.6 * smooth_noise(rng, truth.shape, 1) + 0.8 * smooth_noise(rng, truth.shape, 3)
    out = {"truth_labels": truth}
    record: dict = {"seed": seed, "voxel_mm": voxel_mm, "rotation_deg": np.rad2deg(angles).tolist()}
    if anatomy:
        record["anatomy"] = anatomy
    if not np.allclose(factors, 1.0):
        record["scale"] = factors.tolist()
    for contrast in contrasts:
        out[contrast], record[contrast] = synthesize(
            contrast,
            frac,
            texture,
            rng,
            means=t1_means if contrast == "t1" else None,
            bias_range=bias_range,
            noise_range=noise_range,
        )
    if reorient:
        ornt = np.stack([rng.permutation(3), rng.choice([-1, 1], 3)], axis=1)
        new_affine = affine @ inv_ornt_aff(ornt, truth.shape)
        out = {k: np.ascontiguousarray(apply_orientation(v, ornt)) for k, v in out.items()}
        affine = new_affine
        record["ornt"] = ornt.tolist()
    record["axcodes"] = "".join(nib.aff2axcodes(affine))
    if params is not None:
        params.update(record)
    return {k: Volume(v, affine) for k, v in out.items()}


def _majority(counts: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Index of the truth label with most sub-samples (WM and GM both count as brain)."""
    by_label = np.zeros((int(TRUTH_OF_CLASS.max()) + 1, *counts.shape[1:]), np.uint8)
    for c, label in enumerate(TRUTH_OF_CLASS):
        by_label[label] += counts[c]
    return np.argmax(by_label, axis=0).astype(np.uint8)  # ties -> lower label


def save(vol: Volume, path: Path, dtype: type) -> None:
    data = vol.data
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.rint(data), info.min, info.max)
    img = nib.Nifti1Image(data.astype(dtype), vol.affine)
    img.set_qform(vol.affine, code=1)
    img.set_sform(vol.affine, code=1)
    nib.save(img, str(path))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--labels", type=Path, default=LABELS_PATH, help="NY head 0.5 mm labels")
    p.add_argument("--voxel-mm", type=float, default=1.0)
    p.add_argument("--contrast", nargs="+", default=["t1", "t2", "ct"], choices=list(CONTRASTS))
    p.add_argument("--rotate-deg", type=float, default=0.0, help="max random rotation per axis")
    p.add_argument("--no-reorient", action="store_true", help="keep the RAS storage order")
    p.add_argument(
        "--t1-mean",
        action="append",
        default=[],
        metavar="TISSUE=VALUE",
        help="replace a tissue's T1 mean (white matter 1.0; repeatable), e.g. csf=0.3",
    )
    p.add_argument("--anatomy", choices=list(ANATOMY), help="change the head first")
    p.add_argument(
        "--scale",
        type=float,
        nargs="+",
        default=[1.0],
        help="make the whole head this many times larger (three values: per label axis)",
    )
    p.add_argument("--bias-range", type=float, nargs=2, default=(0.08, 0.2), metavar=("LO", "HI"))
    p.add_argument(
        "--noise-range",
        type=float,
        nargs=2,
        default=(0.015, 0.035),
        metavar=("LO", "HI"),
        help="noise sigma as a share of the brightest tissue mean",
    )
    args = p.parse_args(argv)
    means = {}
    for item in args.t1_mean:
        name, _, value = item.partition("=")
        if name not in TISSUES or not value:
            p.error(f"--t1-mean {item!r}: want TISSUE=VALUE, TISSUE one of {', '.join(TISSUES)}")
        means[name] = float(value)
    if len(args.scale) not in (1, 3):
        p.error(f"--scale takes one factor or three (one per axis), not {len(args.scale)}")
    if not args.labels.exists():
        print(f"labels not found: {args.labels} (set SKULLSEG_DATA)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    params: dict = {}
    vols = simulate_head(
        args.labels,
        args.seed,
        args.voxel_mm,
        args.contrast,
        args.rotate_deg,
        not args.no_reorient,
        params,
        t1_means=means,
        anatomy=args.anatomy,
        scale=args.scale,
        bias_range=tuple(args.bias_range),
        noise_range=tuple(args.noise_range),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, vol in vols.items():
        save(vol, args.out / f"{name}.nii.gz", np.uint8 if name == "truth_labels" else np.int16)
    (args.out / "params.json").write_text(json.dumps(params, indent=1, default=float) + "\n")
    shape = vols["truth_labels"].shape
    print(f"{args.out}: {shape} {params['axcodes']} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
