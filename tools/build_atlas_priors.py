"""Build skullseg's packaged atlas priors from samseg's whole-head probabilistic atlas.

samseg (FreeSurfer's Sequence Adaptive Multimodal SEGmentation, MIT licence) ships a
tetrahedral-mesh atlas whose nodes carry label probabilities ("alphas") for 44
FreeSurfer structures, including skull, soft non-brain tissue and the eyes. This script
rasterises that mesh on the template grid (1 mm), merges the structures into skullseg's
six classes, resamples them to a 2 mm grid and writes one compressed ``.npz`` that
:mod:`skullseg.atlas` reads at run time, so skullseg never imports samseg (which pins
``numpy<2``).

samseg must run in its own virtual environment::

    python3 -m venv /tmp/samvenv
    /tmp/samvenv/bin/pip install samseg==0.4a0 'numpy<2'   # pulls surfa, scikit-learn
    /tmp/samvenv/bin/python tools/build_atlas_priors.py     # from the repository root

Options: ``--level 1|2`` picks the mesh (level 2, the default, is the finer one samseg
uses for its final segmentation), ``--voxel-mm`` the output grid (default 2), ``--out``
the output file (default ``src/skullseg/data/atlas_priors.npz``).

The output holds ``template`` (uint8, the template T1 scaled to 0..255), ``priors``
(uint8, shape (C, I, J, K), probability x 255), ``classes`` (C class names), ``affine``
(4x4 voxel -> world RAS mm, the template's world space) and ``info`` (a JSON string with
the source, the class mapping and the build settings).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi

#: skullseg class -> FreeSurfer label numbers of the samseg atlas that go into it.
#: Intracranial vessels and the optic chiasm are inside the inner skull, so they join
#: csf and brain (as in samseg's own shared GMM classes), not soft tissue.
# fmt: off
CLASS_LABELS: dict[str, tuple[int, ...]] = {
    "air": (0,),  # Unknown: background and air around the head
    "brain": (2, 3, 7, 8, 10, 11, 12, 13, 16, 17, 18, 26, 28, 41, 42, 46, 47, 49, 50, 51,
              52, 53, 54, 58, 60, 77, 80, 85),
    "csf": (4, 5, 14, 15, 24, 30, 31, 43, 44, 62, 63, 72),
    "skull": (165,),
    "soft": (258,),  # Soft_Nonbrain_Tissue: scalp, muscle, fat, nasal and neck tissue
    "eyes": (259,),  # Fluid_Inside_Eyes
}
# fmt: on
CLASSES = tuple(CLASS_LABELS)
REPO = Path(__file__).resolve().parents[1]
ATLAS_SUBDIR = "atlas/20Subjects_smoothing2_down2_smoothingForAffine2"


def atlas_dir() -> Path:
    """The samseg atlas folder of the installed samseg package."""
    import samseg

    return Path(samseg.__file__).parent / ATLAS_SUBDIR


def read_lookup(path: Path) -> list[tuple[int, int, str]]:
    """Rows (FreeSurfer label, alpha column, name) of ``compressionLookupTable.txt``."""
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.append((int(parts[0]), int(parts[1]), parts[2]))
    return rows


def class_columns(lookup: list[tuple[int, int, str]]) -> dict[str, list[int]]:
    """Alpha columns of each class; every atlas label must land in exactly one class."""
    owner = {lab: name for name, labs in CLASS_LABELS.items() for lab in labs}
    cols: dict[str, list[int]] = {name: [] for name in CLASSES}
    for label, col, name in lookup:
        if label not in owner:
            raise SystemExit(f"atlas label {label} {name} has no class: extend CLASS_LABELS")
        cols[owner[label]].append(col)
    return cols


def rasterise(mesh_path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """All label probabilities on the template grid, uint16 (I, J, K, L), sum 65535."""
    from samseg import gems

    collection = gems.KvlMeshCollection()
    collection.read(str(mesh_path))
    priors = collection.reference_mesh.rasterize(shape, -1)
    # gems' rasteriser misses a few voxels on tetrahedron faces and the grid boundary:
    # give each the probabilities of its nearest visited voxel.
    missed = priors.sum(axis=-1, dtype=np.uint32) == 0
    print(f"rasteriser left {int(missed.sum())} voxels empty; filled from neighbours")
    if missed.any():
        idx = ndi.distance_transform_edt(missed, return_distances=False, return_indices=True)
        priors = priors[idx[0], idx[1], idx[2]]
    return priors


def downsample(data: np.ndarray, step: int) -> np.ndarray:
    """Gaussian anti-aliasing (FWHM = ``step`` voxels) then every ``step``-th voxel."""
    if step == 1:
        return data.astype(np.float32)
    sigma = step / 2.3548
    smooth = ndi.gaussian_filter(data.astype(np.float32), sigma, mode="nearest")
    return smooth[::step, ::step, ::step]


def quantise(probs: np.ndarray) -> np.ndarray:
    """Probabilities (C, ...) summing to 1 -> uint8 x 255 whose sums stay at 255.

    Largest-remainder rounding per voxel, so no voxel loses or gains mass.
    """
    scaled = probs * 255.0
    out = np.floor(scaled)
    short = (255 - out.sum(axis=0)).round().astype(int)
    order = np.argsort(-(scaled - out), axis=0)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(probs.shape[0])[:, None, None, None], axis=0)
    out += ranks < short[None]
    return out.astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", type=int, default=2, choices=(1, 2))
    ap.add_argument("--voxel-mm", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "src/skullseg/data/atlas_priors.npz")
    args = ap.parse_args(argv)

    from importlib.metadata import version

    src = atlas_dir()
    lookup = read_lookup(src / "compressionLookupTable.txt")
    cols = class_columns(lookup)
    names = {col: f"{label} {name}" for label, col, name in lookup}
    for cls in CLASSES:
        print(f"{cls:6s}: " + ", ".join(names[c] for c in cols[cls]))

    template = nib.load(src / "template.nii.gz")
    shape = template.shape[:3]
    raw = rasterise(src / f"atlas_level{args.level}.txt.gz", shape)
    probs = []
    for cls in CLASSES:
        p = raw[..., cols[cls]].sum(axis=-1, dtype=np.float32) / 65535.0
        probs.append(downsample(p, args.voxel_mm))
        print(f"{cls:6s}: {float(p.sum()) / 1000.0:8.1f} ml expected in the template")
    del raw
    stack = np.clip(np.stack(probs), 0.0, None)
    stack /= stack.sum(axis=0, keepdims=True)
    priors = quantise(stack)

    t1 = downsample(np.asarray(template.dataobj, dtype=np.float32), args.voxel_mm)
    top = float(np.percentile(t1[t1 > 0], 99.9))
    t1_u8 = np.clip(np.round(t1 / top * 255.0), 0, 255).astype(np.uint8)
    step = np.diag([args.voxel_mm] * 3 + [1]).astype(np.float64)
    affine = template.affine @ step

    info = {
        "source": f"samseg {version('samseg')} {ATLAS_SUBDIR}/atlas_level{args.level}.txt.gz",
        "licence": "MIT (samseg / FreeSurfer); see ATLAS_LICENSE.txt",
        "voxel_mm": args.voxel_mm,
        "template_scale": f"template.nii.gz / {top:.4g} * 255",
        "classes": {cls: [names[c] for c in cols[cls]] for cls in CLASSES},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        template=t1_u8,
        priors=priors,
        classes=np.array(CLASSES),
        affine=affine,
        info=np.array(json.dumps(info)),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), grid {t1_u8.shape}")
    print("affine:\n", affine)


if __name__ == "__main__":
    main()
