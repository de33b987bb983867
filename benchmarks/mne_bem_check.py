"""Build MNE-Python BEM models from skullseg's ``bem/`` folders (one per output folder).

Usage::

    python benchmarks/mne_bem_check.py OUT1 [OUT2 ...] [--solve]

For each skullseg output folder, links its ``bem/`` into a temporary SUBJECTS_DIR and runs
``mne.make_bem_model(ico=None)`` (MNE's surface checks: closed, complete, nested) and, with
``--solve``, ``mne.make_bem_solution``
at ``--ico`` (default 3; 4 is MNE's default). Prints one markdown row per folder with the
minimum gaps from ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    import mne

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outputs", nargs="+", type=Path)
    ap.add_argument("--solve", action="store_true")
    ap.add_argument(
        "--ico", type=int, default=3, help="MNE downsampling for --solve (4 = MNE default)"
    )
    args = ap.parse_args()
    mne.set_log_level("ERROR")
    print("| output | make_bem_model | solution | inner->outer skull mm | outer skull->skin mm |")
    print("|---|---|---|---|---|")
    bad = 0
    for out in args.outputs:
        rep = json.loads((out / "report.json").read_text())
        with tempfile.TemporaryDirectory() as subjects:
            (Path(subjects) / "s").mkdir()
            (Path(subjects) / "s" / "bem").symlink_to((out / "bem").resolve())
            t0 = time.perf_counter()
            try:
                model = mne.make_bem_model(
                    "s",
                    ico=None if not args.solve else args.ico,
                    conductivity=(0.3, 0.006, 0.3),
                    subjects_dir=subjects,
                )
                ok = f"ok ({time.perf_counter() - t0:.0f} s)"
                sol = "-"
                if args.solve:
                    t1 = time.perf_counter()
                    mne.make_bem_solution(model)
                    sol = f"ok ({time.perf_counter() - t1:.0f} s)"
            except Exception as exc:  # noqa: BLE001 - report and continue
                ok, sol, bad = f"FAILED: {exc}".replace("\n", " ")[:120], "-", bad + 1
        b = rep["bem"]
        print(
            f"| {out.name} | {ok} | {sol} | {b['min_gap_inner_outer_skull_mm']} | "
            f"{b['min_gap_outer_skull_skin_mm']} |"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
