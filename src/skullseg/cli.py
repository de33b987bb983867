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


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v", "--verbose", action="count", default=1, help="more messages (repeat for debug detail)"
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
        "--voxel-mm", type=float, default=1.0, help="working resolution in mm (default 1.0)"
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
            )
            print(f"skullseg: outputs in {args.outdir}")
        elif args.command == "demo":
            import tempfile

            from .pipeline import run

            with tempfile.TemporaryDirectory() as tmp:
                path, what = _demo_input(Path(tmp))
                log.info("demo head: %s", what)
                run(path, args.outdir, force=True)
            print(f"skullseg demo: outputs in {args.outdir.resolve()}")
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
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
