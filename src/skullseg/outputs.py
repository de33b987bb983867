"""Writing a result: the output contract of ``skullseg run``, atomically.

Everything goes into a temporary folder beside the output folder, which is
renamed into place only when every file is written; an error or an
interrupt (Ctrl-C, SIGTERM) removes the temporary folder and leaves any
existing output untouched.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import __version__
from . import labels as L
from .errors import InputError, SkullsegError
from .mesh import Surface
from .parallel import cpu_threads
from .progress import ProgressDisplay

__all__ = ["check_outdir", "atomic_output_dir", "write_outputs"]


def check_outdir(input_path: Path, outdir: Path, force: bool) -> None:
    """Refuse an output folder that is the input, non-empty without ``force``, or read-only."""
    src, dst = input_path.resolve(), outdir.resolve()
    if src == dst or (force and src.is_relative_to(dst)):
        raise InputError(
            f"{outdir}: the output folder would overwrite the input "
            f"{input_path.name}; choose another folder"
        )
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a folder")
    if outdir.exists() and any(outdir.iterdir()) and not force:
        raise InputError(
            f"{outdir}: output folder exists and is not empty (use --force to replace it)"
        )
    probe = dst.parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise InputError(f"{outdir}: output folder is not writable")


@contextmanager
def atomic_output_dir(outdir: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``outdir`` when the block succeeds."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.tmp-", dir=outdir.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if outdir.exists():
            if not force and any(outdir.iterdir()):
                raise SkullsegError(f"{outdir}: appeared during the run; not replaced")
            old = outdir.with_name(f".{outdir.name}.old-{os.getpid()}")
            os.replace(outdir, old)
            os.replace(tmp, outdir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, outdir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def shell_mesh(surfaces) -> Surface:
    """The outer skull plus the inverted inner skull: a closed two-wall solid for printing.

    Both walls are star-shaped about the same centre with ordered radii, so
    they never intersect; the inner wall's faces are reversed so its normals
    point into the cavity and the solid's volume is positive.
    """
    vo, fo = surfaces.mesh("outer")
    vi, fi = surfaces.mesh("inner")
    faces = np.concatenate([fo, fi[:, ::-1] + len(vo)])
    return Surface(np.concatenate([vo, vi]), faces)


def write_outputs(
    result,
    folder: Path,
    input_path: Path,
    options: dict,
    progress: ProgressDisplay,
    t_start: float,
    image=None,
    extra: dict | None = None,
) -> dict:
    """Write every output of ``result`` (a :class:`~skullseg.pipeline.SegmentResult`).

    ``options`` may hold ``bem_ico`` (default 4), ``bem_gap_mm`` (1.0) and
    ``bids_naming`` (False); ``image`` is the input volume (its grid defines
    FreeSurfer's surface RAS for the BEM files).
    """
    from .io import input_header_summary, save_nifti
    from .mesh import check_mesh, mask_to_surface, write_mesh
    from .qc import label_volumes_ml
    from .report_html import write_report_html

    def volumes() -> None:
        with progress.stage("write volumes"):
            save_nifti(result.labels, folder / "labels.nii.gz", dtype=np.uint8)
            save_nifti(result.skull_mask, folder / "skull_mask.nii.gz", dtype=np.uint8)
            L.write_labels_tsv(folder / "labels.tsv")

    def skull_mesh() -> tuple:
        with progress.stage("skull mesh"):
            if options.get("skull_mesh", "anatomical") == "shell":
                mesh = shell_mesh(result.surfaces)
            else:
                skull_work = result.labels_work.with_data(
                    (result.labels_work.data == L.SKULL).astype(np.uint8)
                )
                mesh = mask_to_surface(skull_work)
            write_mesh(mesh, folder / "skull.stl")
            fmt = options.get("mesh_format", "stl")
            if fmt != "stl":
                write_mesh(mesh, folder / f"skull.{fmt}")
            return mesh, check_mesh(mesh)

    # the skull mesh is the longest output and needs nothing else: with a second CPU it
    # runs beside the other outputs (the same result either way)
    if cpu_threads(2) > 1:
        before = set(threading.enumerate())
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                meshing = pool.submit(skull_mesh)
                volumes()
                rest = _write_rest(result, folder, input_path, options, progress, image)
                mesh, mesh_facts = meshing.result()
        except BaseException:
            # an interrupt (SIGTERM) can land while the pool starts its thread, before the
            # pool tracks it: wait for every thread started here, so none writes into
            # ``folder`` after the caller has removed it
            for thread in set(threading.enumerate()) - before:
                if not thread.daemon:
                    thread.join()
            raise
    else:
        volumes()
        mesh, mesh_facts = skull_mesh()
        rest = _write_rest(result, folder, input_path, options, progress, image)
    bem, bem_facts, thickness, vt, shown, ico, gap = rest
    report = {
        "skullseg_version": __version__,
        "input": {"path": str(input_path.resolve()), **input_header_summary(input_path)},
        "options": options,
        "working_grid": {
            "shape": list(result.labels_work.shape),
            "voxel_mm": result.labels_work.zooms_mm[0],
        },
        "timings_s": progress.timings,
        "volumes_ml": label_volumes_ml(result.labels),
        "skull_mesh": {
            k: (v.item() if isinstance(v, np.generic) else v) for k, v in mesh_facts.items()
        },
        "skull_thickness_mm": thickness,
        "bem": {**bem_facts, "ico": ico, "gap_mm": gap},
        "warnings": result.warnings + [f"IMPLAUSIBLE: {f}" for f in result.failures],
        "platform": {"python": platform.python_version(), "machine": platform.machine()},
        **(extra or {}),
    }
    with progress.stage("html report"):
        write_report_html(
            folder / "report.html",
            report,
            shown,
            result.labels_work,
            {"skull": mesh, "outer_skull": bem["outer_skull"], "scalp": bem["outer_skin"]},
            vertex_values={"outer_skull": vt},
        )
    report["timings_s"] = dict(progress.timings)
    report["timings_s"]["total"] = round(time.perf_counter() - t_start, 2)
    (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _write_rest(result, folder: Path, input_path: Path, options: dict, progress, image) -> tuple:
    """The outputs other than the volumes and the skull mesh: QC picture, BEM, thickness,
    pseudo-CT and the Slicer segmentation. Returns what the report needs."""
    from .bem import bem_surfaces, check_bem, write_bem
    from .io import save_nifti
    from .qc import write_qc_png
    from .slicer import bids_entities, write_bids_dseg, write_slicer_seg
    from .thickness import thickness_map, thickness_summary, vertex_thickness

    is_ct = options.get("modality") == "ct"
    shown = result.image_work
    if is_ct:  # a bone window for the pictures
        shown = shown.with_data(np.clip(shown.data, -100.0, 1500.0) + 100.0)
    with progress.stage("qc picture"):
        write_qc_png(
            shown,
            result.labels_work,
            folder / "qc.png",
            title=f"skullseg {__version__}: {input_path.name}",
        )
    s = result.surfaces
    grid = image if image is not None else result.labels
    with progress.stage("bem surfaces"):
        ico, gap = int(options.get("bem_ico", 4)), float(options.get("bem_gap_mm", 1.0))
        bem = bem_surfaces(s, labels=result.labels_work, ico=ico, gap_mm=gap)
        bem_facts = {
            k: (v.item() if isinstance(v, np.generic) else v) for k, v in check_bem(bem).items()
        }
        write_bem(bem, folder, grid.affine, grid.shape)
    with progress.stage("thickness"):
        thick = thickness_map(result.skull_mask)
        save_nifti(thick, folder / "thickness.nii.gz", dtype=np.float32)
        vt = vertex_thickness(s, bem["outer_skull"])
        thickness = thickness_summary(thick, bem["outer_skull"], vt)
    if not is_ct:
        with progress.stage("pseudo-CT"):
            from .pseudo_ct import pseudo_ct

            save_nifti(
                pseudo_ct(result.labels, image=image), folder / "pseudo_ct.nii.gz", dtype=np.float32
            )
    with progress.stage("slicer segmentation"):
        write_slicer_seg(result.labels, folder / "labels.seg.nrrd")
        if options.get("bids_naming"):
            write_bids_dseg(result.labels, folder, bids_entities(input_path.name))
    return bem, bem_facts, thickness, vt, shown, ico, gap
