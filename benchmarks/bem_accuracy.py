"""BEM accuracy benchmark: skullseg's BEM surfaces against mne_sample's reference surfaces.

Segments ``truth/mne_sample/t1.nii.gz``, fits the three BEM surfaces
(:func:`skullseg.bem.bem_surfaces`, ico 4 by default) and measures, for each of
inner skull, outer skull and outer skin, the distances (mm, exact point-to-triangle)
from our vertices to the reference ``bem/*.surf`` (FLASH-based, FreeSurfer surface RAS
of the T1) and back. Prints a markdown table (mean and 95th percentile, both directions
and pooled; and pooled over the vault, the part within 70 mm of the reference
surface's top) and the :func:`skullseg.bem.check_bem` results. With ``--mne`` it also builds
and solves the 3-layer model with MNE-Python from the written ``bem/`` folder.

Usage::

    python benchmarks/bem_accuracy.py [--data DIR] [--ico 4] [--gap-mm 1.0] [--cranium-only]
        [--mne [--mne-ico 3]] [--out-json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from skullseg.bem import BEM_NAMES, bem_surfaces, check_bem, write_bem
from skullseg.evaluate import read_freesurfer_surface
from skullseg.geometry import points_to_mesh
from skullseg.io import load_volume
from skullseg.pipeline import segment

REPO = Path(__file__).resolve().parent.parent
VAULT_DEPTH_MM = 70.0
DEFAULT_DATA = Path(os.environ.get("SKULLSEG_DATA", REPO.parent / "shared" / "data"))


def _mne_solve(surfs: dict, t1, ico: int | None) -> dict:
    import mne

    with tempfile.TemporaryDirectory() as subjects_dir:
        write_bem(surfs, Path(subjects_dir) / "sample", t1.affine, t1.shape)
        t0 = time.perf_counter()
        model = mne.make_bem_model(
            "sample", ico=ico, conductivity=(0.3, 0.006, 0.3), subjects_dir=subjects_dir,
            verbose="warning",
        )  # fmt: skip
        mne.make_bem_solution(model, verbose="warning")
    return {"mne_ico": ico, "n_vertices": [s["np"] for s in model],
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--ico", type=int, default=4, choices=(3, 4, 5))
    ap.add_argument("--gap-mm", type=float, default=1.0)
    ap.add_argument(
        "--cranium-only",
        action="store_true",
        help="outer skull from the cranium's surface alone (before session 19: no skull base)",
    )
    ap.add_argument("--mne", action="store_true", help="also solve the model with MNE")
    ap.add_argument("--mne-ico", type=int, default=3, help="MNE's downsampling (0 = none)")
    ap.add_argument("--out-json", type=Path)
    args = ap.parse_args(argv)

    folder = args.data / "truth" / "mne_sample"
    if not (folder / "t1.nii.gz").exists():
        print(f"no mne_sample in {args.data}", file=sys.stderr)
        return 2
    t1 = load_volume(folder / "t1.nii.gz")
    t0 = time.perf_counter()
    result = segment(t1)
    t_seg = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels = None if args.cranium_only else result.labels_work
    surfs = bem_surfaces(result.surfaces, labels=labels, ico=args.ico, gap_mm=args.gap_mm)
    t_bem = time.perf_counter() - t0
    checks = check_bem(surfs)

    rows = {}
    for name in BEM_NAMES:
        ref_v, ref_f = read_freesurfer_surface(folder / "bem" / f"{name}.surf", reference=t1)
        ours = surfs[name]
        a = points_to_mesh(ours.vertices, ref_v, ref_f)  # ours -> reference
        b = points_to_mesh(ref_v, ours.vertices, ours.faces)  # reference -> ours
        top = ref_v[:, 2].max() - VAULT_DEPTH_MM  # vault: within 70 mm of the reference top
        va, vb = a[ours.vertices[:, 2] >= top], b[ref_v[:, 2] >= top]
        rows[name] = {
            "mean_ours_to_ref": a.mean(), "p95_ours_to_ref": np.percentile(a, 95),
            "mean_ref_to_ours": b.mean(), "p95_ref_to_ours": np.percentile(b, 95),
            "mean_symmetric": np.r_[a, b].mean(), "p95_symmetric": np.percentile(np.r_[a, b], 95),
            "mean_vault": np.r_[va, vb].mean(), "p95_vault": np.percentile(np.r_[va, vb], 95),
        }  # fmt: skip
        rows[name] = {k: round(float(v), 3) for k, v in rows[name].items()}

    print(f"mne_sample, ico {args.ico} ({len(surfs['inner_skull'].vertices)} vertices), "
          f"gap {args.gap_mm} mm; segment {t_seg:.0f} s, BEM fit {t_bem:.1f} s\n")  # fmt: skip
    print("| surface | mean ours→ref | p95 ours→ref | mean ref→ours | p95 ref→ours "
          "| mean sym. | p95 sym. | mean vault sym. | p95 vault sym. |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, d in rows.items():
        print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in d.values()) + " |")
    print()
    print(f"check_bem ok: {checks['ok']}; "
          f"min gap inner→outer skull {checks['min_gap_inner_outer_skull_mm']:.2f} mm, "
          f"outer skull→skin {checks['min_gap_outer_skull_skin_mm']:.2f} mm")  # fmt: skip
    for name in BEM_NAMES:
        print(f"  {name}: {checks[name]}")
    out = {"distances_mm": rows, "check_bem": checks, "segment_s": round(t_seg, 1)}
    if args.mne:
        out["mne"] = _mne_solve(surfs, t1, args.mne_ico or None)
        print(f"MNE make_bem_model + make_bem_solution: {out['mne']}")
    if args.out_json:
        args.out_json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
