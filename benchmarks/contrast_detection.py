"""How far each shared head is from the T1/T2 decision of ``skullseg run --modality auto``.

Usage::

    python benchmarks/contrast_detection.py [--data DIR] [--voxel-mm 2] [MORE ...]

For every head in ``heads/`` and ``truth/*/t1.nii.gz`` (and any image files given):
conform (at ``--voxel-mm``), head mask, the atlas's affine fit, then
:func:`skullseg.priors.fluid_to_brain_ratio` (upper quartile of the image where the atlas
expects CSF over its median where it expects brain).
Prints a markdown row per head with the ratio and the decision against
:data:`skullseg.priors.T2_FLUID_RATIO`. The pipeline measures the same on its bias-corrected
1 mm working grid; this script skips N4 to stay fast (about 5 s a head).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from skullseg.conform import conform
from skullseg.head import head_mask
from skullseg.io import load_volume
from skullseg.priors import T2_FLUID_RATIO, affine_priors, fit_atlas, fluid_to_brain_ratio

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SKULLSEG_DATA", REPO.parent / "shared" / "data"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    ap.add_argument("--voxel-mm", type=float, default=2.0)
    ap.add_argument("more", nargs="*", type=Path, help="more images (simulated heads, ...)")
    args = ap.parse_args()
    logging.getLogger("skullseg").setLevel(logging.WARNING)
    files = (
        sorted((args.data / "heads").glob("*.nii*"))
        + sorted((args.data / "truth").glob("*/t1.nii*"))
        + list(args.more)
    )
    print(f"| head | CSF / brain | decision (T2 above {T2_FLUID_RATIO}) |")
    print("|---|---:|---|")
    for path in files:
        name = path.name.split(".nii")[0]
        if name in ("t1", "t2"):
            name = f"{path.parent.name}/{name}"
        work = conform(load_volume(path), args.voxel_mm)
        head = head_mask(work)
        transform, note = fit_atlas(work, head)
        if transform is None:
            print(f"| {name} | - | T1 ({note}) |", flush=True)
            continue
        ratio = fluid_to_brain_ratio(work, head, affine_priors(work, transform))
        kind = "T2" if ratio > T2_FLUID_RATIO else "T1"
        print(f"| {name} | {ratio:.2f} | {kind} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
