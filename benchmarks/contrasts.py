"""Skull accuracy by input contrast on simulated heads: T1, T1+T2 and CT.

For each seed a simulated head (``benchmarks/simulate.py``: T1, T2 and CT with
exact truth, cached under ``--work``) is segmented by

* ``T1``: :func:`skullseg.pipeline.segment` on the T1;
* ``T1+T2``: the same with ``t2=`` the T2, when ``segment`` accepts that keyword
  (checked with :func:`inspect.signature`; otherwise the row says so);
* ``T2`` (only with ``--methods``): the T2 alone, as ``skullseg run --modality t2``
  does it (no bone below the cranium without a T1);
* ``CT``: :func:`skullseg.ct.segment_ct` on the CT.

The skull (label 2) is scored against the truth over the whole head and the
vault (the top 70 mm of the truth skull), and a markdown table is printed.
Note that the CT skull is a bone threshold: it includes the facial bones,
mandible and vertebrae, as the simulated truth does.

Usage::

    python benchmarks/contrasts.py [--seeds 0 1 2] [--work DIR] [--out-json FILE]
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from skullseg.ct import segment_ct
from skullseg.evaluate import evaluate
from skullseg.io import load_volume
from skullseg.pipeline import segment
from skullseg.volume import Volume

HERE = Path(__file__).resolve().parent
CONTRASTS = ("t1", "t2", "ct")
COLUMNS = ("seed", "method", "dice_whole", "dice_vault", "assd_mm", "hd95_mm", "time_s")


def simulated_head(seed: int, work: Path) -> dict[str, Volume]:
    """T1, T2, CT and truth of one simulated head, simulated once and cached in ``work``."""
    out = work / f"sim{seed}"
    names = [*CONTRASTS, "truth_labels"]
    if not all((out / f"{n}.nii.gz").exists() for n in names):
        cmd = [sys.executable, str(HERE / "simulate.py"), "--seed", str(seed), "--out", str(out)]
        subprocess.run([*cmd, "--contrast", *CONTRASTS], check=True)
    vols = {n: load_volume(out / f"{n}.nii.gz") for n in names}
    truth = vols["truth_labels"]
    vols["truth_labels"] = truth.with_data(np.rint(truth.data).astype(np.uint8))
    return vols


def methods() -> dict[str, Callable[[dict[str, Volume]], Volume] | None]:
    """Name -> function from a head's images to a label volume (None: not available)."""
    fused = None
    if "t2" in inspect.signature(segment).parameters:

        def fused(v: dict[str, Volume]) -> Volume:
            return segment(v["t1"], t2=v["t2"]).labels  # type: ignore[call-arg]

    return {
        "T1": lambda v: segment(v["t1"]).labels,
        "T1+T2": fused,
        "T2": lambda v: segment(v["t2"], t2=v["t2"], t1_weighted=False).labels,  # --modality t2
        "CT": lambda v: segment_ct(v["ct"]).labels,
    }


def score(labels: Volume, truth: Volume) -> dict[str, float]:
    whole = evaluate(labels, truth, 2, 2)
    vault = evaluate(labels, truth, 2, 2, region="vault")
    return {
        "dice_whole": float(whole["dice"]),
        "dice_vault": float(vault["dice"]),
        "assd_mm": float(whole["assd_mm"]),
        "hd95_mm": float(whole["hd95_mm"]),
    }


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def markdown(rows: Sequence[dict]) -> str:
    """The rows as a markdown table, with a mean row per method."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c, "n/a")) for c in COLUMNS) + " |")
    for name in dict.fromkeys(r["method"] for r in rows):
        done = [r for r in rows if r["method"] == name and "note" not in r]
        if len(done) > 1:
            mean = {c: float(np.mean([r[c] for r in done])) for c in COLUMNS[2:]}
            lines.append(
                "| mean | " + name + " | " + " | ".join(_cell(mean[c]) for c in COLUMNS[2:]) + " |"
            )
    notes = {r["method"]: r["note"] for r in rows if "note" in r}
    lines += [f"\n{m}: {n}" for m, n in notes.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--work", type=Path, default=Path("/tmp/skullseg_contrasts"))
    p.add_argument("--methods", nargs="+", default=["T1", "T1+T2", "CT"])
    p.add_argument("--out-json", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    available = methods()
    rows: list[dict] = []
    for seed in args.seeds:
        vols = simulated_head(seed, args.work)
        for name in args.methods:
            fn = available[name]
            if fn is None:
                note = "not run: skullseg.pipeline.segment has no t2= keyword yet"
                rows.append({"seed": seed, "method": name, "note": note})
                continue
            t0 = time.perf_counter()
            labels = fn(vols)
            row = {"seed": seed, "method": name, "time_s": time.perf_counter() - t0}
            row |= score(labels, vols["truth_labels"])
            rows.append(row)
            print(" ".join(f"{k}={_cell(v)}" for k, v in row.items()), file=sys.stderr, flush=True)
    print(markdown(rows))
    if args.out_json:
        args.out_json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
