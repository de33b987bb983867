"""BIDS App ``group`` level and cluster runs: the group table and page, a SLURM array script.

:func:`group_report` gathers the participant reports that :mod:`skullseg.bids` wrote into
one TSV row each and a standalone HTML page with QC thumbnails; :func:`slurm_script` writes
an ``sbatch`` array that runs the participant level one subject per task.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import shlex
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .bids import _OUTPUTS, _read_report, _write_atomic
from .errors import InputError

__all__ = ["group_report", "slurm_script"]


def _thumbnail_b64(png: Path, width: int = 360) -> str:
    """The PNG shrunk by block averaging to about ``width`` pixels, base64-encoded."""
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    s = max(1, math.ceil(img.shape[1] / width))
    h, w = img.shape[0] // s * s, img.shape[1] // s * s
    small = img[:h, :w].reshape(h // s, s, w // s, s, -1).mean(axis=(1, 3)).squeeze()
    buf = io.BytesIO()
    mpimg.imsave(buf, small, format="png", cmap="gray")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def group_report(out_dir: str | Path) -> Path:
    """BIDS App ``group`` level: ``skullseg_group.tsv`` and ``skullseg_group.html`` in ``out_dir``.

    One row per job report found (failed jobs included, with their error): status, volumes
    (mL) of every label, vault skull thickness (median, p5, p95 in mm), warnings; the HTML adds a
    thumbnail of each QC picture, embedded so that the page stands alone.

    Returns
    -------
    Path
        The TSV file.
    """
    out_dir = Path(out_dir)
    found = sorted(out_dir.glob("sub-*/anat/*_desc-skullseg_report.json"))
    found += sorted(out_dir.glob("sub-*/ses-*/anat/*_desc-skullseg_report.json"))
    if not found:
        raise InputError(f"{out_dir}: no skullseg participant reports (run 'participant' first)")
    rows, thumbs = [], []
    for path in sorted(found, key=lambda p: p.name):
        rep = _read_report(path) or {"status": "failed", "error": "unreadable report"}
        b = rep.get("bids", {})
        row = {
            "participant_id": f"sub-{b['subject']}" if "subject" in b else "",
            "session_id": f"ses-{b['session']}" if b.get("session") else "",
            "prefix": path.name.removesuffix(_OUTPUTS["report"][0]),
            "status": rep.get("status", ""),
            "error": rep.get("error", ""),
        }
        row.update({f"{k}_ml": v for k, v in rep.get("volumes_ml", {}).items()})
        thick = rep.get("skull_thickness_mm") or {}
        # vault statistics on the outer-skull vertices when present (report format since 0.1)
        thick = thick.get("vertices_vault", thick)
        row.update({f"skull_thickness_{k}_mm": thick.get(k, "") for k in ("median", "p5", "p95")})
        row["warnings"] = "; ".join(rep.get("warnings", []))
        rows.append(row)
        qc = path.with_name(row["prefix"] + _OUTPUTS["qc"][0])
        thumbs.append(_thumbnail_b64(qc) if row["status"] == "ok" and qc.is_file() else "")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    tsv = out_dir / "skullseg_group.tsv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, delimiter="\t", restval="n/a", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("n/a" if v == "" else v) for k, v in r.items()} for r in rows)
    _write_atomic(tsv, buf.getvalue())
    _write_atomic(out_dir / "skullseg_group.html", _html(rows, columns, thumbs))
    return tsv


def _html(rows: list[dict], columns: list[str], thumbs: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["qc", *columns])
    body = []
    for row, thumb in zip(rows, thumbs):
        img = f'<img src="data:image/png;base64,{thumb}" width="360">' if thumb else ""
        cls = "" if row["status"] == "ok" else ' class="failed"'
        cells = "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns)
        body.append(f"<tr{cls}><td>{img}</td>{cells}</tr>")
    n_ok = sum(r["status"] == "ok" for r in rows)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>skullseg group report</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px;font-size:12px}.failed{background:#fdd}"
        f"</style></head><body><h1>skullseg {html.escape(__version__)}: {n_ok} of {len(rows)} "
        f"ok</h1>\n<table><tr>{head}</tr>\n" + "\n".join(body) + "\n</table></body></html>\n"
    )


def slurm_script(
    bids_dir: str | Path,
    out_dir: str | Path,
    participants: Sequence[str],
    extra_args: Sequence[str] = (),
    *,
    cpus: int = 2,
    mem: str = "4G",
    time_limit: str = "02:00:00",
) -> str:
    """An ``sbatch`` array script: one task per participant label, then ``group`` by hand.

    Submit with ``sbatch script.sh``; when the array is done, run
    ``skullseg bids BIDS_DIR OUT_DIR group`` (or ``sbatch --dependency=afterok:JOBID``).
    """
    labels = [p.removeprefix("sub-") for p in participants]
    if not labels:
        raise InputError("no participants for the SLURM array")
    cmd = ["skullseg", "bids", str(bids_dir), str(out_dir), "participant"]
    extra = "".join(f" {shlex.quote(a)}" for a in extra_args)
    return f"""#!/bin/bash
#SBATCH --job-name=skullseg
#SBATCH --array=0-{len(labels) - 1}
#SBATCH --cpus-per-task={cpus}
#SBATCH --mem={mem}
#SBATCH --time={time_limit}
#SBATCH --output=skullseg_%A_%a.log
set -euo pipefail
LABELS=({" ".join(shlex.quote(x) for x in labels)})
export OMP_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-1}}"
{shlex.join(cmd)} --n-jobs 1 --participant-label "${{LABELS[$SLURM_ARRAY_TASK_ID]}}"{extra}
# when all tasks are done: skullseg bids {shlex.join(cmd[2:4])} group
"""
