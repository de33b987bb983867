"""Per-ray outer-skull error on T1 for several placements of the edge (``edge_rise_fraction``).

For each head with a reference, ``segment`` runs once per level: ``0`` is the
bone-threshold edge (the rule before session 5), ``0.2``-``0.5`` place the outer
skull that share of the way up the bone-to-scalp rise (:func:`skullseg.skull.rise_point`)
on every ray, and ``width`` is the default since session 9: a share that follows each
ray's rise width (:func:`skullseg.profiles.width_rise_fraction`).
Along the 10 242 rays the reference outer skull is where the reference's skull (or
anything inside it) ends. Printed per head and level, over rays pointing above
``z > -0.2``: bias and mean absolute error of the outer skull (mm), and skull Dice over
the whole head and the vault (input grid, :func:`skullseg.evaluate.evaluate`).

Usage::

    python benchmarks/outer_skull_rays.py [--data DIR] [--work DIR] [--sim-seeds 0 1]
        [--levels 0 0.2 0.3 0.4 0.5 width]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from skullseg import labels as L
from skullseg.evaluate import evaluate
from skullseg.io import load_volume
from skullseg.pipeline import segment
from skullseg.skull import SkullParams
from skullseg.volume import Volume

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accuracy import reference_radii, simulated_case  # noqa: E402


def rows(name: str, image: Volume, truth: Volume, skull_value: int, inside: Volume, levels):
    """Segment ``image`` once per level; compare the outer skull with ``inside``'s edge."""
    for level in levels:
        if level == "width":
            params = SkullParams()
        else:
            params = SkullParams(edge_rise_fraction=float(level), edge_rise_adaptive=False)
        res = segment(image, params=params)
        s = res.surfaces
        edge = reference_radii(res, inside)
        keep = (s.grid.directions[:, 2] > -0.2) & np.isfinite(edge)
        err = s.outer_mm[keep] - edge[keep]
        dice = [
            evaluate(res.labels, truth, L.SKULL, skull_value, region=r)["dice"]
            for r in ("whole", "vault")
        ]
        print(
            f"| {name} | {level} | {err.mean():+.2f} / {np.abs(err).mean():.2f} "
            f"| {dice[0]:.3f} / {dice[1]:.3f} |",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("SKULLSEG_DATA", HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "skullseg_accuracy")
    ap.add_argument("--sim-seeds", nargs="*", type=int, default=[0, 1])
    ap.add_argument("--levels", nargs="*", default=["0", "0.2", "0.3", "0.4", "0.5", "width"])
    args = ap.parse_args()
    print("| head | rise fraction | outer skull bias / MAE mm | skull Dice whole / vault |")
    print("|---|---|---|---|")
    mne = args.data / "truth" / "mne_sample"
    if (mne / "t1.nii.gz").exists():
        t = load_volume(mne / "truth_labels.nii.gz")
        inside = t.with_data((t.data == 1) | (t.data == 2))
        rows("mne_sample", load_volume(mne / "t1.nii.gz"), t, 2, inside, args.levels)
    if (args.data / "labels_only").exists():
        for seed in args.sim_seeds:
            case = simulated_case(seed, args.work)
            t = load_volume(case.truth)
            inside = t.with_data(np.isin(t.data, [L.SKULL, L.CSF, L.BRAIN]))
            rows(f"sim{seed}", load_volume(case.t1), t, L.SKULL, inside, args.levels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
