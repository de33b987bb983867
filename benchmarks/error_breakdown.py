"""Where the skull errors are: false and missed bone by height band and by the other label.

Compares a skullseg label map with a reference label map (same label values as
skullseg, e.g. a simulated head's ``truth_labels.nii.gz``) on the reference grid
(prediction resampled by nearest neighbour through both affines). Prints, for
height bands below the top of the reference skull, the reference and predicted
bone volumes, the true positives, the false positives split by the reference's
label there, and the misses split by the predicted label there (all in mL).

Usage::

    python benchmarks/error_breakdown.py PRED_LABELS TRUTH_LABELS [--bands 70 110 140]
"""

from __future__ import annotations

import argparse

import numpy as np

from skullseg import labels as L
from skullseg.conform import resample_to_grid
from skullseg.io import load_volume

NAMES = {L.BACKGROUND: "bg", L.SCALP: "scalp", L.SKULL: "skull", L.CSF: "CSF", L.BRAIN: "brain"}
NAMES[L.AIR_CAVITY] = "air"


def _split(mask: np.ndarray, other: np.ndarray, ml: float) -> str:
    values, counts = np.unique(other[mask], return_counts=True)
    parts = [
        f"{NAMES.get(int(v), v)} {c * ml:.0f}" for v, c in zip(values, counts) if c * ml >= 0.5
    ]
    return ", ".join(parts) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pred")
    ap.add_argument("truth")
    ap.add_argument("--bands", type=float, nargs="+", default=[70.0, 110.0, 140.0])
    args = ap.parse_args()
    truth = load_volume(args.truth)
    t = np.asarray(truth.data).astype(np.int16)
    pred = load_volume(args.pred)
    p = resample_to_grid(pred.with_data(pred.data.astype(np.float32)), truth, order=0).data
    p = p.astype(np.int16)
    ml = truth.voxel_volume_ml
    bone_t, bone_p = t == L.SKULL, p == L.SKULL
    z = truth.world_coordinate(2)
    top = float(z[bone_t].max())
    edges = [0.0, *args.bands, np.inf]
    dice = 2 * (bone_t & bone_p).sum() / max(bone_t.sum() + bone_p.sum(), 1)
    ref_ml, ours_ml = bone_t.sum() * ml, bone_p.sum() * ml
    print(f"skull Dice {dice:.3f}; reference {ref_ml:.0f} mL, ours {ours_ml:.0f} mL")
    print()
    print("| mm below the top | reference mL | ours mL | TP | FP (reference says) | FN (we say) |")
    print("|---|---:|---:|---:|---|---|")
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (z <= top - lo) & (z > top - hi)
        fp, fn = bone_p & ~bone_t & band, bone_t & ~bone_p & band
        volumes = [(m & band).sum() * ml for m in (bone_t, bone_p, bone_t & bone_p)]
        cells = [f"{lo:.0f}–{hi:.0f}", *(f"{v:.0f}" for v in volumes)]
        cells += [_split(fp, t, ml), _split(fn, p, ml)]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
