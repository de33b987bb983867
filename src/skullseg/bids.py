"""BIDS App: ``skullseg bids BIDS_DIR OUT_DIR participant|group`` over a whole dataset.

Discovery parses BIDS file names with the standard library rather than ``pybids`` (SQLAlchemy,
pandas, formulaic...; indexes every file of the dataset before the first query) or
``bids2table`` (pyarrow, pandas): only ``anat`` images are needed, named by the spec as
``sub-<label>[/ses-<label>]/anat/sub-<label>[_ses-<label>][_<key>-<value>...]_T1w.nii[.gz]``.

Outputs follow the BIDS derivatives layout. Each job runs :func:`skullseg.pipeline.run` into a
temporary folder whose files are then moved into place; its ``_desc-skullseg_report.json`` is
written last and marks it complete, so a rerun resumes. Subjects run in parallel processes
(capped by available memory) or on a Dask cluster (:mod:`skullseg.bids_executors`); a failing
subject does not stop the others.
The group level and the SLURM array script are in :mod:`skullseg.bids_group`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .bids_executors import run_dask, run_pool
from .errors import InputError, SkullsegError
from .fileutil import atomic_write_bytes
from .parallel import MEM_PER_JOB_GB, memory_capped_jobs

__all__ = [
    "Job",
    "find_participants",
    "derivative_paths",
    "write_dataset_description",
    "run_participant",
    "run_participants",
    "is_complete",
    "memory_capped_jobs",
    "bids_command",
]

log = logging.getLogger("skullseg")

BIDS_VERSION = "1.9.0"
_ANAT = re.compile(
    r"^(?P<prefix>sub-(?P<sub>[a-zA-Z0-9]+)(?:_ses-(?P<ses>[a-zA-Z0-9]+))?"
    r"(?:_[a-zA-Z]+-[a-zA-Z0-9]+)*)_(?P<suffix>T1w|T2w)\.nii(?:\.gz)?$"
)
#: derivative key -> (name suffix after the prefix, file written by ``pipeline.run``)
_OUTPUTS = {
    "dseg": ("_desc-skullseg_dseg.nii.gz", "labels.nii.gz"),
    "dseg_tsv": ("_desc-skullseg_dseg.tsv", "labels.tsv"),
    "mask": ("_desc-skull_mask.nii.gz", "skull_mask.nii.gz"),
    "mesh": ("_desc-skull_mesh.stl", "skull.stl"),
    "qc": ("_desc-skullseg_qc.png", "qc.png"),
    "report": ("_desc-skullseg_report.json", None),
}


@dataclass(frozen=True)
class Job:
    """One T1w image to segment: its subject, session, images and output name prefix."""

    subject: str  # label without "sub-"
    session: str | None  # label without "ses-"
    t1: Path
    t2: Path | None
    prefix: str  # source entities, e.g. "sub-01_ses-a_run-1"


def _strip(labels: Iterable[str] | None, key: str) -> set[str] | None:
    return None if labels is None else {s.removeprefix(f"{key}-") for s in labels}


def find_participants(
    bids_dir: str | Path,
    participant_labels: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    with_t2: bool = False,
) -> list[Job]:
    """Find the T1w images (and matching T2w) of a BIDS dataset, one :class:`Job` each.

    Parameters
    ----------
    bids_dir : str or Path
        Root of a BIDS raw dataset (``derivatives/`` and non-``sub-`` folders are ignored).
    participant_labels, sessions : sequence of str, optional
        Only these subjects / sessions (with or without the ``sub-`` / ``ses-`` prefix).
    with_t2 : bool
        Also find a T2w per T1w: same entities, else the same session's only/first T2w.

    Returns
    -------
    list of Job
        Sorted by prefix; every T1w (each ``acq``/``run``...) is a job of its own.

    Raises
    ------
    InputError
        Missing folder, requested participants without T1w, or no T1w at all.
    """
    root = Path(bids_dir)
    if not root.is_dir():
        raise InputError(f"{root}: BIDS folder not found")
    if not (root / "dataset_description.json").is_file():
        log.warning("%s: no dataset_description.json (is this a BIDS dataset?)", root)
    wanted, wanted_ses = _strip(participant_labels, "sub"), _strip(sessions, "ses")
    jobs: list[Job] = []
    for anat in sorted(root.glob("sub-*/anat")) + sorted(root.glob("sub-*/ses-*/anat")):
        found: dict[str, dict[str, Path]] = {"T1w": {}, "T2w": {}}
        for f in sorted(anat.iterdir()):
            m = _ANAT.match(f.name)
            if m and f"sub-{m['sub']}" == anat.parts[len(root.parts)] and f.is_file():
                found[m["suffix"]][m["prefix"]] = f
        for prefix, t1 in found["T1w"].items():
            m = _ANAT.match(t1.name)
            sub, ses = m["sub"], m["ses"]  # type: ignore[index]
            if (wanted is not None and sub not in wanted) or (
                wanted_ses is not None and ses not in wanted_ses
            ):
                continue
            t2s = found["T2w"]
            t2 = t2s.get(prefix) or (next(iter(t2s.values())) if t2s else None)
            jobs.append(Job(sub, ses, t1, t2 if with_t2 else None, prefix))
    if wanted is not None and (missing := wanted - {j.subject for j in jobs}):
        raise InputError(f"{root}: no T1w image for participant(s) {', '.join(sorted(missing))}")
    if not jobs:
        raise InputError(f"{root}: no T1w images found (sub-*/[ses-*/]anat/*_T1w.nii[.gz])")
    return sorted(jobs, key=lambda j: j.prefix)


def derivative_paths(out_dir: str | Path, job: Job) -> dict[str, Path]:
    """BIDS derivative file names of ``job``: keys dseg, dseg_tsv, mask, mesh, qc, report."""
    anat = Path(out_dir) / f"sub-{job.subject}"
    if job.session:
        anat = anat / f"ses-{job.session}"
    return {key: anat / "anat" / f"{job.prefix}{suffix}" for key, (suffix, _) in _OUTPUTS.items()}


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_dataset_description(out_dir: str | Path) -> Path:
    """Write the derivative dataset's ``dataset_description.json`` (when missing or outdated)."""
    path = Path(out_dir) / "dataset_description.json"
    desc = {
        "Name": "skullseg: skull, scalp, CSF, brain and air-cavity segmentation",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "skullseg", "Version": __version__}],
    }
    text = json.dumps(desc, indent=2) + "\n"
    if not path.is_file() or path.read_text() != text:
        _write_atomic(path, text)
    return path


def _read_report(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_complete(out_dir: str | Path, job: Job) -> bool:
    """True when the job's report says ``ok`` and all its derivative files exist."""
    paths = derivative_paths(out_dir, job)
    report = _read_report(paths["report"])
    return bool(report and report.get("status") == "ok") and all(
        p.is_file() and p.stat().st_size > 0 for p in paths.values()
    )


def _record(job: Job, status: str, error: str = "", seconds: float = 0.0) -> dict:
    return {
        "participant_id": f"sub-{job.subject}",
        "session_id": f"ses-{job.session}" if job.session else "",
        "prefix": job.prefix,
        "status": status,
        "error": error,
        "seconds": round(seconds, 1),
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return text if isinstance(exc, SkullsegError) else f"{type(exc).__name__}: {text}"


def run_participant(
    job: Job, out_dir: str | Path, force: bool = False, *, voxel_mm: float = 1.0
) -> dict:
    """Segment one job into the BIDS derivative layout; never raises for a failing subject.

    Parameters
    ----------
    job : Job
    out_dir : str or Path
        Derivative dataset root.
    force : bool
        Redo the job even when its outputs are complete.
    voxel_mm : float
        Working resolution passed to :func:`skullseg.pipeline.run`.

    Returns
    -------
    dict
        ``participant_id``, ``session_id``, ``prefix``, ``status`` (ok, failed or skipped),
        ``error`` (one line) and ``seconds``. A failure also writes the job's report with
        ``status: failed``, so the group table lists it and a rerun retries it.
    """
    from .pipeline import run

    out_dir = Path(out_dir)
    if not force and is_complete(out_dir, job):
        return _record(job, "skipped")
    paths = derivative_paths(out_dir, job)
    anat = paths["report"].parent
    anat.mkdir(parents=True, exist_ok=True)
    bids_info = {
        "subject": job.subject,
        "session": job.session,
        "Sources": [f"bids:raw:{Path(*job.t1.parts[-(4 if job.session else 3) :]).as_posix()}"],
        "t2": str(job.t2) if job.t2 else None,
        "outputs": {k: p.name for k, p in paths.items()},
    }
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{job.prefix}.tmp-", dir=anat))
    try:
        report = run(job.t1, work / "out", voxel_mm=voxel_mm)
        if job.t2 is not None:
            report.setdefault("warnings", []).append(
                f"T2w {job.t2.name} found but not used: segmentation uses the T1w only"
            )
        paths["report"].unlink(missing_ok=True)  # incomplete while files move
        for key, (_, src) in _OUTPUTS.items():
            if src is not None:
                os.replace(work / "out" / src, paths[key])
        for extra in sorted((work / "out").iterdir()):  # newer outputs: desc-skullseg_<name>
            if extra.name != "report.json":
                stem, dot, ext = extra.name.partition(".")
                dest = (
                    anat
                    / f"{job.prefix}_desc-skullseg_{re.sub('[^a-zA-Z0-9]', '', stem)}{dot}{ext}"
                )
                if dest.is_dir():
                    shutil.rmtree(dest)
                os.replace(extra, dest)
                bids_info["outputs"][extra.name] = dest.name
        seconds = time.perf_counter() - t0
        report.update(status="ok", error="", bids=bids_info, elapsed_s=round(seconds, 2))
        _write_atomic(paths["report"], json.dumps(report, indent=2, sort_keys=True) + "\n")
        return _record(job, "ok", seconds=seconds)
    except Exception as exc:  # noqa: BLE001 - one subject's failure must not stop the others
        log.debug("%s failed", job.prefix, exc_info=True)
        error, seconds = _one_line(exc), time.perf_counter() - t0
        failed = {"status": "failed", "error": error, "skullseg_version": __version__}
        _write_atomic(paths["report"], json.dumps({**failed, "bids": bids_info}, indent=2) + "\n")
        return _record(job, "failed", error, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _progress(total: int) -> Callable[[dict], None]:
    done: list[dict] = []
    t0 = time.perf_counter()

    def report(rec: dict) -> None:
        done.append(rec)
        n = {s: sum(r["status"] == s for r in done) for s in ("ok", "failed", "skipped")}
        ran = n["ok"] + n["failed"]
        left = total - len(done)
        eta = f", about {(time.perf_counter() - t0) / ran * left / 60:.1f} min left" if ran else ""
        msg = f"{rec['status']}: {rec['error']}" if rec["error"] else rec["status"]
        counts = ", ".join(f"{v} {k}" for k, v in n.items())
        log.info(f"[{len(done)}/{total}] {rec['prefix'].replace('_', ' ')}: {msg} ({counts}{eta})")

    return report


def run_participants(
    jobs: Sequence[Job],
    out_dir: str | Path,
    n_jobs: int = 1,
    force: bool = False,
    executor: str = "process",
    scheduler: str | None = None,
    *,
    voxel_mm: float = 1.0,
    mem_per_job_gb: float = MEM_PER_JOB_GB,
) -> list[dict]:
    """Run :func:`run_participant` for every job, in parallel; returns records in job order.

    Parameters
    ----------
    n_jobs : int
        Parallel jobs (``<= 0``: one per CPU), capped at available memory / ``mem_per_job_gb``.
        With 1 (process executor) the jobs run in this process.
    executor : {"process", "dask"}
        A spawn-context ``ProcessPoolExecutor``, or a ``dask.distributed`` client.
    scheduler : str, optional
        Dask scheduler address; ``None`` or ``"local"``: a ``LocalCluster`` of ``n_jobs``
        single-threaded worker processes.
    Other parameters are those of :func:`run_participant`.
    """
    out_dir = Path(out_dir)
    if executor not in ("process", "dask"):
        raise InputError(f"unknown executor '{executor}' (use 'process' or 'dask')")
    records: dict[int, dict] = {}
    progress = _progress(len(jobs))
    todo = []
    for i, job in enumerate(jobs):
        if not force and is_complete(out_dir, job):
            records[i] = _record(job, "skipped")
            progress(records[i])
        else:
            todo.append(i)
    remote = executor == "dask" and scheduler not in (None, "local")  # its workers, its memory
    n_workers = 0 if remote else min(memory_capped_jobs(n_jobs, mem_per_job_gb), len(todo) or 1)
    args = (out_dir, force)
    if executor == "dask" and todo:
        run_dask(jobs, todo, args, voxel_mm, scheduler, n_workers, records, progress)
    elif n_workers == 1:
        for i in todo:
            records[i] = run_participant(jobs[i], *args, voxel_mm=voxel_mm)
            progress(records[i])
    elif todo:
        run_pool(jobs, todo, args, voxel_mm, n_workers, records, progress)
    return [records[i] for i in range(len(jobs))]


def bids_command(
    bids_dir: str | Path,
    out_dir: str | Path,
    level: str,
    participant_labels: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    with_t2: bool = False,
    n_jobs: int = 1,
    force: bool = False,
    executor: str = "process",
    scheduler: str | None = None,
    print_slurm: bool = False,
    voxel_mm: float = 1.0,
) -> int:
    """``skullseg bids``: the participant or group level, or print a SLURM array script.

    Returns
    -------
    int
        0 when every job is ok (or skipped), 1 when any failed; the group level and
        ``print_slurm`` return 0. Bad arguments raise :class:`~skullseg.errors.InputError`.
    """
    from .bids_group import group_report, slurm_script

    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    if out_dir.resolve() == bids_dir.resolve():
        raise InputError(f"{out_dir}: the output folder must not be the BIDS folder itself")
    if level not in ("participant", "group"):
        raise InputError(f"unknown analysis level '{level}' (use 'participant' or 'group')")
    if print_slurm:
        jobs = find_participants(bids_dir, participant_labels, sessions, with_t2)
        extra = [*(["--session", *sessions] if sessions else []), *(["--t2"] if with_t2 else [])]
        extra += [*(["--voxel-mm", str(voxel_mm)] if voxel_mm != 1.0 else [])]
        extra += ["--force"] if force else []
        labels = sorted({j.subject for j in jobs})
        print(slurm_script(bids_dir.absolute(), out_dir.absolute(), labels, extra), end="")
        return 0
    if level == "group":
        tsv = group_report(out_dir)
        print(f"skullseg bids: group table {tsv}, summary {tsv.with_suffix('.html')}")
        return 0
    jobs = find_participants(bids_dir, participant_labels, sessions, with_t2)
    write_dataset_description(out_dir)
    recs = run_participants(jobs, out_dir, n_jobs, force, executor, scheduler, voxel_mm=voxel_mm)
    failed = [r for r in recs if r["status"] == "failed"]
    counts = {s: sum(r["status"] == s for r in recs) for s in ("ok", "skipped", "failed")}
    print(f"skullseg bids: {', '.join(f'{n} {s}' for s, n in counts.items())} in {out_dir}")
    for r in failed:
        print(f"  failed {r['prefix']}: {r['error']}")
    return 1 if failed else 0


def __getattr__(name: str):
    """``group_report`` and ``slurm_script`` live in :mod:`skullseg.bids_group`."""
    if name in ("group_report", "slurm_script"):
        from . import bids_group

        return getattr(bids_group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
