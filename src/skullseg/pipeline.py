"""The pipeline: conform -> bias-correct -> masks -> skull surfaces -> labels -> outputs.

:func:`segment` is the one-call library API on a :class:`Volume`; :func:`run`
does a whole command-line job from a file to a folder of outputs, written
atomically (a temporary folder beside the output, renamed at the end).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from . import labels as L
from .conform import conform, to_input_grid
from .errors import SkullsegError
from .intensity import n4_bias_correct
from .masks import adaptive_brain_mask, brain_levels, head_mask
from .skull import SkullParams, SkullSurfaces, fit_skull_surfaces
from .tissue import air_cavities, assemble_labels
from .volume import Volume

__all__ = ["SegmentResult", "segment", "run", "OUTPUT_FILES"]

log = logging.getLogger("skullseg")

#: The output contract of ``skullseg run`` (names other tools rely on).
OUTPUT_FILES = (
    "labels.nii.gz",
    "labels.tsv",
    "skull_mask.nii.gz",
    "skull.stl",
    "qc.png",
    "report.json",
)


@dataclass
class SegmentResult:
    """Everything :func:`segment` found, on the input grid and on the working grid."""

    labels: Volume  # uint8 on the input grid
    labels_work: Volume  # uint8 on the working grid (RAS, isotropic)
    image_work: Volume  # bias-corrected input on the working grid
    surfaces: SkullSurfaces
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def skull_mask(self) -> Volume:
        """uint8 0/1 skull mask on the input grid."""
        return self.labels.with_data((self.labels.data == L.SKULL).astype(np.uint8))


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("[%s] ...", name)
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 2)
        log.info("[%s] done in %.1f s", name, self.timings[name])


def segment(
    image: Volume, *, voxel_mm: float = 1.0, params: SkullParams | None = None, n4: bool = True
) -> SegmentResult:
    """Segment skull, scalp, CSF, brain and air cavities from a T1-weighted head MRI.

    Parameters
    ----------
    image : Volume
        T1-weighted head image, any orientation and voxel size.
    voxel_mm : float
        Working resolution in mm.
    params : SkullParams
        Bounds of the layered skull model.
    n4 : bool
        Correct the bias field (N4) before segmenting.

    Returns
    -------
    SegmentResult

    Examples
    --------
    >>> from skullseg.phantom import make_phantom
    >>> result = segment(make_phantom(2.0).t1)  # doctest: +SKIP
    """
    timer = _Timer()
    warnings: list[str] = []
    with timer.stage("conform"):
        work = conform(image, voxel_mm)
        if max(image.zooms_mm) > 2.5:
            warnings.append(
                f"thick slices ({max(image.zooms_mm):.1f} mm): accuracy is limited "
                "along the slice direction"
            )
    with timer.stage("head mask"):
        head = head_mask(work)
    with timer.stage("bias correction"):
        if n4:
            work = n4_bias_correct(work, head)
    with timer.stage("brain mask"):
        levels = brain_levels(work, head)
        brain = adaptive_brain_mask(work, head, levels)
        if brain.data.sum() * brain.voxel_volume_ml < 300:
            raise SkullsegError("no brain found in the image (is it a head MRI?)")
    with timer.stage("skull surfaces"):
        p = params or SkullParams()
        surfaces = fit_skull_surfaces(
            work, head, brain, dark_threshold=p.dark_fraction * levels.wm, params=p
        )
    with timer.stage("labels"):
        h = head.data > 0
        inner, outer = surfaces.inside_all(work)
        inner &= h
        outer = (outer & h) | inner
        air = air_cavities(work, h, outer, air_threshold=0.2 * levels.wm)
        lab_work = work.with_data(assemble_labels(h, brain.data > 0, inner, outer, air))
        lab_in = to_input_grid(lab_work, image)
    return SegmentResult(lab_in, lab_work, work, surfaces, timer.timings, warnings)


def run(
    input_path: str | Path,
    outdir: str | Path,
    *,
    force: bool = False,
    voxel_mm: float = 1.0,
    volume_index: int | None = None,
) -> dict:
    """Segment one image file and write the output contract into ``outdir``.

    Nothing is written to ``outdir`` unless the whole run succeeds: outputs go
    to a temporary folder beside it that is renamed at the end.

    Returns
    -------
    dict
        The report (also written as ``report.json``).
    """
    from .io import input_header_summary, load_volume, save_nifti
    from .mesh import check_mesh, mask_to_surface, write_mesh
    from .qc import label_volumes_ml, write_qc_png

    input_path = Path(input_path)
    outdir = Path(outdir)
    _check_outdir(input_path, outdir, force)
    t_start = time.perf_counter()
    image = load_volume(input_path, volume_index=volume_index)
    result = segment(image, voxel_mm=voxel_mm)
    timer = _Timer()
    timer.timings.update(result.timings_s)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.tmp-", dir=outdir.parent))
    try:
        with timer.stage("write volumes"):
            save_nifti(result.labels, tmp / "labels.nii.gz", dtype=np.uint8)
            save_nifti(result.skull_mask, tmp / "skull_mask.nii.gz", dtype=np.uint8)
            L.write_labels_tsv(tmp / "labels.tsv")
        with timer.stage("skull mesh"):
            skull_work = result.labels_work.with_data(
                (result.labels_work.data == L.SKULL).astype(np.uint8)
            )
            mesh = mask_to_surface(skull_work)
            write_mesh(mesh, tmp / "skull.stl")
            mesh_facts = check_mesh(mesh)
        with timer.stage("qc picture"):
            write_qc_png(
                result.image_work,
                result.labels_work,
                tmp / "qc.png",
                title=f"skullseg {__version__}: {input_path.name}",
            )
        report = {
            "skullseg_version": __version__,
            "input": {"path": str(input_path.resolve()), **input_header_summary(input_path)},
            "options": {"voxel_mm": voxel_mm, "volume_index": volume_index, "modality": "t1"},
            "working_grid": {
                "shape": list(result.labels_work.shape),
                "voxel_mm": result.labels_work.zooms_mm[0],
            },
            "timings_s": timer.timings,
            "volumes_ml": label_volumes_ml(result.labels),
            "skull_mesh": _jsonable(mesh_facts),
            "skull_thickness_mm": _thickness_stats(result.surfaces),
            "warnings": result.warnings,
            "platform": {"python": platform.python_version(), "machine": platform.machine()},
        }
        report["timings_s"]["total"] = round(time.perf_counter() - t_start, 2)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        _move_into_place(tmp, outdir, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for w in result.warnings:
        log.warning("warning: %s", w)
    return report


def _thickness_stats(s: SkullSurfaces) -> dict[str, float]:
    t = s.outer_mm - s.inner_mm
    return {
        "median": round(float(np.median(t)), 2),
        "p5": round(float(np.percentile(t, 5)), 2),
        "p95": round(float(np.percentile(t, 95)), 2),
        "note": "radial distance between inner and outer skull over all directions",
    }


def _jsonable(d: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


def _check_outdir(input_path: Path, outdir: Path, force: bool) -> None:
    from .errors import InputError

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
    parent = outdir.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise InputError(f"{outdir}: output folder is not writable")


def _move_into_place(tmp: Path, outdir: Path, force: bool) -> None:
    if outdir.exists():
        if not force and any(outdir.iterdir()):
            raise SkullsegError(f"{outdir}: appeared during the run; not replaced")
        old = outdir.with_name(f".{outdir.name}.old-{os.getpid()}")
        os.replace(outdir, old)
        os.replace(tmp, outdir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, outdir)
