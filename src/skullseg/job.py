"""One command-line job: an image file in, a folder of outputs out.

:func:`run` loads the input (and a second contrast, registered to it), picks the
engine (:func:`skullseg.pipeline.segment` for MR, :func:`skullseg.ct.segment_ct` for CT),
refuses an implausible result, and writes the output contract atomically (a temporary
folder beside the output, renamed at the end). It is importable from
:mod:`skullseg.pipeline` too.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .errors import ImplausibleResultError, InputError
from .progress import ProgressDisplay
from .volume import Volume

__all__ = ["run"]

log = logging.getLogger("skullseg")


def run(
    input_path: str | Path,
    outdir: str | Path,
    *,
    force: bool = False,
    voxel_mm: float = 1.0,
    volume_index: int | None = None,
    allow_implausible: bool = False,
    quiet: bool = True,
    bem_ico: int = 4,
    bem_gap_mm: float = 1.0,
    bids_naming: bool = False,
    t2_path: str | Path | None = None,
    modality: str = "auto",
    skull_mesh: str = "anatomical",
    mesh_format: str = "stl",
    cranium_only: bool = False,
    atlas_refinement: bool = True,
) -> dict:
    """Segment one image file and write the output contract into ``outdir``.

    Nothing is written to ``outdir`` unless the whole run succeeds: outputs go
    to a temporary folder beside it that is renamed at the end.

    ``modality`` is ``"t1"``, ``"t2"`` (a T2/PD image alone), ``"ct"`` or
    ``"auto"``: CT when the values look like Hounsfield units; otherwise, without
    ``t2_path``, T2 when the registered atlas's CSF is brighter than its brain
    (:func:`skullseg.priors.looks_t2_weighted`), else T1. The report's options name
    the modality used.
    ``t2_path`` adds a T2- or PD-weighted image of the same head, rigidly
    registered to the first (mutual information) and checked for a mismatch.
    ``skull_mesh`` is ``"anatomical"`` (the bone label, skull base included) or
    ``"shell"`` (outer skull plus inverted inner skull); ``mesh_format`` adds a
    ``skull.ply`` or ``skull.obj`` beside the contract's ``skull.stl``.
    ``cranium_only`` leaves the facial skeleton, mandible and spine out of the
    skull label (they are found on T1 inputs only). ``atlas_refinement=False`` skips the
    B-spline refinement of the atlas fit (and with it the atlas's basal cisterns): about
    5 s less CPU time (1–2 s of wall time with two CPUs) and 0.2 GB less peak memory.

    Returns
    -------
    dict
        The report (also written as ``report.json``).
    """
    from .io import load_volume
    from .outputs import atomic_output_dir, check_outdir, write_outputs
    from .pipeline import segment

    if modality not in ("auto", "t1", "t2", "ct"):
        raise ValueError(f"modality must be 'auto', 't1', 't2' or 'ct', not {modality!r}")
    input_path = Path(input_path)
    outdir = Path(outdir)
    check_outdir(input_path, outdir, force)
    progress = ProgressDisplay(quiet=quiet)
    t_start = time.perf_counter()
    from .ct import looks_like_ct, segment_ct

    with progress.stage("load"):
        image = load_volume(input_path, volume_index=volume_index)
    extra: dict = {}
    pre_warnings: list[str] = []
    if modality == "auto" and looks_like_ct(image):
        modality = "ct"
        pre_warnings.append("input looks like a CT (Hounsfield units): segmented as CT")
    if modality == "ct":
        if t2_path is not None:
            raise InputError(f"{t2_path}: --t2 cannot be combined with a CT input")
        result = segment_ct(image, voxel_mm=voxel_mm)
    else:
        t2 = None
        if t2_path is not None:
            t2, extra["t2_registration"], more = _load_second_contrast(
                Path(t2_path), image, progress
            )
            pre_warnings += more
        result = segment(
            image,
            voxel_mm=voxel_mm,
            progress=progress,
            t2=t2,
            facial_bone=not cranium_only,
            t1_weighted={"t1": True, "t2": False}.get(modality),  # None: decide
            deformable_atlas=atlas_refinement,
        )
        modality = "t1" if result.t1_weighted else "t2"
    result.warnings[:0] = pre_warnings
    if result.failures and not allow_implausible:
        raise ImplausibleResultError(
            f"{input_path}: implausible result: {'; '.join(result.failures)} "
            "(use --allow-implausible to write it anyway)"
        )
    options = {
        "voxel_mm": voxel_mm,
        "volume_index": volume_index,
        "modality": modality,
        "t2": None if t2_path is None else str(Path(t2_path).resolve()),
        "bem_ico": bem_ico,
        "bem_gap_mm": bem_gap_mm,
        "bids_naming": bids_naming,
        "skull_mesh": skull_mesh,
        "mesh_format": mesh_format,
        "cranium_only": cranium_only,
        "atlas_refinement": atlas_refinement,
    }
    with atomic_output_dir(outdir, force) as tmp:
        report = write_outputs(
            result, tmp, input_path, options, progress, t_start, image, extra=extra
        )
    for w in report["warnings"]:
        log.warning("warning: %s", w)
    progress.close()
    return report


def _load_second_contrast(
    path: Path, image: Volume, progress: ProgressDisplay
) -> tuple[Volume, dict, list[str]]:
    """Load a T2/PD image, register it rigidly to ``image`` and check the pairing."""
    from .io import load_volume
    from .register import check_pairing, register_rigid

    with progress.stage("register T2"):
        second = load_volume(path)
        on_first, _, quality = register_rigid(second, image)
        try:
            warnings = check_pairing(image, second, quality, resampled=on_first)
        except InputError as exc:
            msg = str(exc).removeprefix("second image: ")
            raise InputError(f"{path}: does not match the first image: {msg}") from None
    warnings = [f"{path.name}: {w}" for w in warnings]
    quality = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in quality.items()}
    return on_first, quality, warnings
