"""Per-ray inner-skull error on T1: the constant CSF layer against the dark-band rule.

For each head with a reference, ``segment`` runs once; along its 10 242 rays the
reference inner skull is where the reference's intracranial mask ends. From the
same brain envelope and outer skull, two T1 rules place the inner skull:

* ``constant``: brain + 2.5 mm (the rule before session 2);
* ``band, unsmoothed``: :func:`skullseg.skull.inner_from_band` without the rays' grid
  (neither the closing nor the smoothing over the top of the head);
* ``band``: the same with the grid, as ``segment`` places it.

Printed per head, over rays pointing above ``z > -0.2`` (the ray through the foramen
magnum follows the spinal canal, so lower rays have no meaningful reference): mean
absolute error and bias of the rules, and the correlation of the reference CSF layer
(inner − brain) with the band (outer − brain).

Usage::

    python benchmarks/inner_skull_rays.py [--data DIR] [--work DIR] [--sim-seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from skullseg import labels as L
from skullseg.io import load_volume
from skullseg.phantom import make_phantom
from skullseg.pipeline import segment
from skullseg.skull import SkullParams, inner_from_band
from skullseg.volume import Volume

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accuracy import reference_radii, simulated_case  # noqa: E402


def row(name: str, image: Volume, intracranial: Volume) -> str:
    """Segment ``image`` and compare both inner-skull rules with ``intracranial``."""
    res = segment(image, facial_bone=False)
    s = res.surfaces
    truth = reference_radii(res, intracranial)
    keep = (s.grid.directions[:, 2] > -0.2) & np.isfinite(truth)
    band = inner_from_band(s.brain_mm, s.outer_mm, SkullParams(), grid=s.grid)[keep]
    brain, outer, truth = s.brain_mm[keep], s.outer_mm[keep], truth[keep]
    constant = brain + 2.5
    unsmoothed = inner_from_band(brain, outer, SkullParams())
    r = np.corrcoef(truth - brain, outer - brain)[0, 1]
    cells = [
        f"{np.abs(x - truth).mean():.2f} / {(x - truth).mean():+.2f}"
        for x in (constant, unsmoothed, band)
    ]
    return f"| {name} | {' | '.join(cells)} | {r:.2f} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("SKULLSEG_DATA", HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "skullseg_accuracy")
    ap.add_argument("--sim-seeds", nargs="*", type=int, default=[0, 1, 2])
    args = ap.parse_args()
    print(
        "| head | constant: MAE / bias mm | band, unsmoothed: MAE / bias mm"
        " | band: MAE / bias mm | r(CSF, band) |"
    )
    print("|---|---|---|---|---|")
    mne = args.data / "truth" / "mne_sample"
    if (mne / "t1.nii.gz").exists():
        truth = load_volume(mne / "truth_labels.nii.gz")
        print(row("mne_sample", load_volume(mne / "t1.nii.gz"), truth.with_data(truth.data == 1)))
    if (args.data / "labels_only").exists():
        for seed in args.sim_seeds:
            case = simulated_case(seed, args.work)
            t = load_volume(case.truth)
            inside = (t.data == L.CSF) | (t.data == L.BRAIN)
            print(row(f"sim{seed}", load_volume(case.t1), t.with_data(inside)))
    for name, vox, kw in [
        ("phantom 1 mm", 1.0, {"seed": 0}),
        ("phantom 1.5 mm", 1.5, {"seed": 0}),
        ("phantom 2 mm, 1.5 mm temporal bone", 2.0, {"seed": 1, "thin_temporal_mm": 1.5}),
    ]:
        ph = make_phantom(vox, **kw)
        inside = (ph.labels.data == L.CSF) | (ph.labels.data == L.BRAIN)
        print(row(name, ph.t1, ph.labels.with_data(inside)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
