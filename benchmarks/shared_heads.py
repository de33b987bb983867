"""Run skullseg on every head in ../shared/data/heads (and colin27) and tabulate the results.

Usage::

    python benchmarks/shared_heads.py [--data DIR] [--work DIR] [--montage qc_montage.png]

For each head: exit status, wall time and peak memory (``/usr/bin/time``), skull volume,
median vault thickness, the skull mesh's face count ("(!)" when not manifold) and stage time,
and every warning from ``report.json``; printed as a markdown table. Each run's log
(``skullseg run -v``) is kept as ``WORK/NAME.log``.
``--montage`` writes one picture with the central sagittal/coronal/axial QC views of all
heads, for the by-eye check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("SKULLSEG_DATA", REPO.parent / "shared" / "data")),
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/skullseg_shared_heads"))
    ap.add_argument("--montage", type=Path, default=None)
    args = ap.parse_args()
    heads = sorted((args.data / "heads").glob("*.nii.gz"))
    colin = args.data / "truth" / "colin27" / "t1.nii.gz"
    cases = [(p.name.removesuffix(".nii.gz"), p) for p in heads]
    if colin.exists():
        cases.append(("colin27", colin))
    args.work.mkdir(parents=True, exist_ok=True)
    timer = shutil.which("time") and Path("/usr/bin/time").exists()
    rows = []
    for name, path in cases:
        out = args.work / name
        tfile = args.work / f"{name}.time"
        # -v: each head's log (contrast ratio, atlas fit, stage timings) goes to NAME.log
        cmd = ["skullseg", "run", str(path), "-o", str(out), "--force", "-v"]
        if timer:
            cmd = ["/usr/bin/time", "-f", "%e %M", "-o", str(tfile), *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        (args.work / f"{name}.log").write_text(proc.stderr)
        wall, peak = ("?", "?")
        if timer and tfile.exists():
            wall, kb = tfile.read_text().split()[-2:]
            peak = f"{int(kb) / 1024:.0f}"
        if proc.returncode == 0:
            rep = json.loads((out / "report.json").read_text())
            skull = f"{rep['volumes_ml']['skull']:.0f}"
            th = rep["skull_thickness_mm"].get("vertices_vault", {}).get("median", "")
            warn = "; ".join(rep["warnings"]) or "-"
            mesh = rep.get("skull_mesh", {})
            faces = f"{mesh.get('n_faces', '?')}" + ("" if mesh.get("manifold") else " (!)")
            mesh_s = rep["timings_s"].get("skull mesh", "?")
        else:
            skull, th, faces, mesh_s = "-", "-", "-", "-"
            warn = proc.stderr.strip().splitlines()[-1]
        rows.append((name, proc.returncode, wall, peak, skull, th, faces, mesh_s, warn))
        print(f"{name}: rc={proc.returncode} {wall} s", file=sys.stderr)
    print(
        "| head | exit | wall s | peak MB | skull mL | vault thickness median mm"
        " | skull.stl faces | skull mesh s | warnings |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    if args.montage:
        _montage(
            [args.work / r[0] / "qc.png" for r in rows if r[1] == 0],
            [r[0] for r in rows if r[1] == 0],
            args.montage,
        )
    return 0


def _montage(pngs: list[Path], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(pngs)
    cols = 3
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(cols * 8, 3 * ((n + 2) // 3)))
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, png, name in zip(axes.ravel(), pngs, names):
        img = plt.imread(png)
        ax.imshow(img[: img.shape[0] // 2])  # top row of the QC: axial, coronal, sagittal
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=60)


if __name__ == "__main__":
    sys.exit(main())
