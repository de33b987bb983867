"""Command line: ``skullseg run``, ``skullseg demo``, ``skullseg evaluate``.

Expected failures (bad input, implausible result) print one line on stderr
and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .errors import SkullsegError

log = logging.getLogger("skullseg")


def _set_threads(n: int | None) -> None:
    if n is None:
        return
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
    ):
        os.environ[var] = str(n)
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    except Exception:  # noqa: BLE001 - threads are a hint, never a failure
        pass


def _handle_termination() -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so temporary outputs are cleaned up."""
    import signal

    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            try:
                signal.signal(sig, _raise)
            except (ValueError, OSError):  # not in the main thread
                pass


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.WARNING
        if quiet or verbose == 0
        else (logging.DEBUG if verbose > 1 else logging.INFO)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _voxel_mm(text: str) -> float:
    """``--voxel-mm``: a working voxel edge between 0.5 and 4 mm."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.5 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"{value:g} mm is outside 0.5-4 mm")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more messages (repeat for debug detail)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--output",
        "--outdir",
        dest="outdir",
        required=True,
        type=Path,
        help="output folder (created; must be empty unless --force)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--threads", type=int, default=None, help="number of CPU threads")
    p.add_argument(
        "--voxel-mm",
        type=_voxel_mm,
        default=1.0,
        help="working resolution in mm, 0.5-4 (default 1.0)",
    )
    p.add_argument(
        "--t2",
        "--contrast2",
        dest="t2",
        type=Path,
        default=None,
        help="a T2- or PD-weighted image of the same head (registered rigidly to the input)",
    )
    p.add_argument(
        "--modality",
        choices=["auto", "t1", "t2", "ct"],
        default="auto",
        help="input contrast (auto: CT when the values look like Hounsfield units, T2 when "
        "the registered atlas's CSF is brighter than its brain, else T1)",
    )
    p.add_argument(
        "--cranium-only",
        action="store_true",
        help="label only the cranium as skull (no facial bones, mandible or spine; "
        "T2 inputs are always cranium-only)",
    )
    p.add_argument(
        "--no-atlas-refinement",
        dest="atlas_refinement",
        action="store_false",
        help="keep the atlas's affine fit (no B-spline refinement, so no atlas cisterns at "
        "the skull base): a little faster and leaner, slightly less accurate there",
    )
    p.add_argument(
        "--skull-mesh",
        choices=["anatomical", "shell"],
        default="anatomical",
        help="skull.stl from the bone label (anatomical) or as outer skull + inverted inner "
        "skull (shell: a clean two-wall cranium for printing)",
    )
    p.add_argument(
        "--mesh-format",
        choices=["stl", "ply", "obj"],
        default="stl",
        help="also write the skull mesh as skull.ply or skull.obj",
    )
    p.add_argument(
        "--bem-ico",
        type=int,
        default=4,
        choices=[3, 4, 5],
        help="icosphere order of the BEM surfaces (4: 2562 vertices, MNE default)",
    )
    p.add_argument(
        "--bem-gap-mm",
        type=float,
        default=1.0,
        help="minimum gap between nested BEM surfaces in mm (default 1.0)",
    )
    p.add_argument(
        "--bids-naming",
        action="store_true",
        help="also write <entities>_desc-skullseg_dseg.nii.gz/.tsv (BIDS derivative)",
    )
    p.add_argument(
        "--allow-implausible",
        action="store_true",
        help="write the outputs even when the result fails a hard plausibility check",
    )
    p.add_argument(
        "--volume",
        type=int,
        default=None,
        dest="volume_index",
        help="which volume of a 4D input to use (from 0)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skullseg",
        description="Skull, scalp, CSF and brain from a head MRI, with a printable skull mesh.",
    )
    parser.add_argument("--version", action="version", version=f"skullseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_run = sub.add_parser(
        "run",
        help="segment one head image",
        description="Segment one head image (NIfTI, MGZ, NRRD, MetaImage or "
        "a DICOM series folder) and write labels, skull mask, skull mesh, "
        "QC picture and report into OUTDIR.",
    )
    p_run.add_argument("input", type=Path, help="T1-weighted head image")
    _add_run_options(p_run)
    _add_common(p_run)

    p_demo = sub.add_parser(
        "demo",
        help="run on the built-in example head",
        description="Run the whole job on an example head that ships with "
        "the installation (pydeface's average head, or skullseg's own "
        "synthetic head when that is missing).",
    )
    p_demo.add_argument(
        "-o",
        "--output",
        "--outdir",
        dest="outdir",
        type=Path,
        default=Path("skullseg_demo"),
        help="output folder (default ./skullseg_demo; replaced if it exists)",
    )
    p_demo.add_argument("--threads", type=int, default=None, help="number of CPU threads")
    _add_common(p_demo)

    p_bids = sub.add_parser(
        "bids",
        help="BIDS App: every participant of a BIDS dataset, or the group summary",
        description="BIDS App. 'participant': segment each subject's (and session's) T1w of "
        "BIDS_DIR into BIDS derivatives in OUTPUT_DIR (in parallel; complete subjects are "
        "skipped). 'group': one TSV table and one HTML page across subjects.",
    )
    p_bids.add_argument("bids_dir", type=Path, help="BIDS raw dataset")
    p_bids.add_argument("output_dir", type=Path, help="derivatives folder (created)")
    p_bids.add_argument("analysis_level", choices=["participant", "group"])
    p_bids.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        dest="participant_labels",
        metavar="LABEL",
    )
    p_bids.add_argument("--session", "--session-label", nargs="+", dest="sessions", metavar="LABEL")
    p_bids.add_argument("--t2", action="store_true", help="also find each T1w's T2w")
    p_bids.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        help="subjects in parallel (0: one per CPU; capped by memory)",
    )
    p_bids.add_argument("--force", action="store_true", help="redo complete subjects")
    p_bids.add_argument("--executor", choices=["process", "dask"], default="process")
    p_bids.add_argument(
        "--scheduler", default=None, help="dask scheduler address, or 'local' (default)"
    )
    p_bids.add_argument(
        "--print-slurm", action="store_true", help="print an sbatch array script and exit"
    )
    p_bids.add_argument(
        "--voxel-mm",
        type=_voxel_mm,
        default=1.0,
        help="working resolution in mm, 0.5-4 (default 1.0)",
    )
    _add_common(p_bids)

    p_eval = sub.add_parser(
        "evaluate",
        help="compare a label map with a reference",
        description="Dice, Jaccard, volume ratio, ASSD, HD95 and normalised "
        "surface Dice of one label against a reference, in world space. "
        "Prints JSON.",
    )
    p_eval.add_argument("pred", type=Path)
    p_eval.add_argument("truth", type=Path)
    p_eval.add_argument("--pred-label", type=int, default=2)
    p_eval.add_argument("--truth-label", type=int, default=2)
    p_eval.add_argument("--region", choices=["whole", "vault"], default="whole")
    _add_common(p_eval)
    return parser


def _demo_input(workdir: Path) -> tuple[Path, str]:
    """The example head: pydeface's average head if installed, else a synthetic one."""
    try:
        import pydeface

        path = Path(pydeface.__file__).parent / "data" / "mean_reg2mean.nii.gz"
        if path.exists():
            return path, "pydeface average head (mean_reg2mean.nii.gz, MIT)"
    except ImportError:
        pass
    from .io import save_nifti
    from .phantom import make_phantom

    path = workdir / "skullseg_phantom_t1.nii.gz"
    save_nifti(make_phantom(1.0, seed=0).t1, path)
    return path, "skullseg synthetic head (seed 0, 1 mm)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_logging(args.verbose, args.quiet)
    _handle_termination()
    _set_threads(getattr(args, "threads", None))
    try:
        if args.command == "run":
            from .pipeline import run

            run(
                args.input,
                args.outdir,
                force=args.force,
                voxel_mm=args.voxel_mm,
                volume_index=args.volume_index,
                allow_implausible=args.allow_implausible,
                quiet=args.quiet,
                bem_ico=args.bem_ico,
                bem_gap_mm=args.bem_gap_mm,
                bids_naming=args.bids_naming,
                t2_path=args.t2,
                modality=args.modality,
                skull_mesh=args.skull_mesh,
                mesh_format=args.mesh_format,
                cranium_only=args.cranium_only,
                atlas_refinement=args.atlas_refinement,
            )
            print(f"skullseg: outputs in {args.outdir}; report: {args.outdir / 'report.html'}")
        elif args.command == "demo":
            import tempfile

            from .pipeline import run

            with tempfile.TemporaryDirectory() as tmp:
                path, what = _demo_input(Path(tmp))
                log.info("demo head: %s", what)
                run(path, args.outdir, force=True, quiet=args.quiet)
            print(f"skullseg demo: outputs in {args.outdir.resolve()}")
            print(f"skullseg demo: open {(args.outdir / 'report.html').resolve()} in a browser")
        elif args.command == "bids":
            from .bids import bids_command

            return bids_command(
                args.bids_dir,
                args.output_dir,
                args.analysis_level,
                participant_labels=args.participant_labels,
                sessions=args.sessions,
                with_t2=args.t2,
                n_jobs=args.n_jobs,
                force=args.force,
                executor=args.executor,
                scheduler=args.scheduler,
                print_slurm=args.print_slurm,
                voxel_mm=args.voxel_mm,
            )
        elif args.command == "evaluate":
            from .evaluate import evaluate
            from .io import load_volume

            res = evaluate(
                load_volume(args.pred),
                load_volume(args.truth),
                pred_label=args.pred_label,
                truth_label=args.truth_label,
                region=args.region,
            )
            print(json.dumps(res, indent=2, sort_keys=True))
    except SkullsegError as exc:
        if args.debug:
            raise
        print(f"skullseg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("skullseg: interrupted; nothing was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("skullseg: error: out of memory", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - no traceback for users unless --debug
        if args.debug:
            raise
        where = getattr(args, "input", None) or getattr(args, "pred", None) or "skullseg"
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"skullseg: error: {where}: unexpected failure: {msg} (run with --debug for details)",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
