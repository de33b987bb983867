"""Skull accuracy benchmark: run ``skullseg run`` on heads with a reference and score the skull.

Cases: ``mne_sample`` (skull from FLASH-made BEM surfaces), ``colin27`` (weak,
template-based reference), simulated heads (``benchmarks/simulate.py``, exact
truth) for each ``--sim-seeds`` value, ``clinical``: the same simulated heads as a
clinical scan shows them (4 mm axial slices, field of view cut 110 mm below the
vertex), scored against the 1 mm truth, and ``oblique``: the same heads simulated on a
grid rotated by up to ``--rotate-deg`` about each axis (truth on that grid), and
``variants``: the same heads simulated outside the default ranges (:data:`VARIANTS`:
heavier noise, a stronger bias field, lower contrast, brighter or darker CSF, no bright
fat, bone marrow as dark as compact bone or as bright as fat, soft tissue as dark as
muscle (with or without fat), 0.8 and 1.3 mm voxels; an atrophied brain, a thinner or a
thicker skull, a head 10 % smaller or larger, or narrower and longer), each
against its own truth, to check that nothing is tuned to the default simulator or to
the one labelled head's proportions. Each case
runs as a subprocess under ``/usr/bin/time -v`` (wall time, peak RSS), then
``OUT/labels.nii.gz`` (label 2 = skull) is compared with the reference over the whole
head and over the vault (the top 70 mm of the reference skull), and a markdown table is
printed. A second table scores the head (every non-zero label against the reference's)
over the top 70 mm of the reference head: where the skin ends.

Usage::

    python benchmarks/accuracy.py [--cases mne_sample colin27 sim clinical oblique variants]
        [--sim-seeds 0 1 2] [--rotate-deg 10] [--variants NAME ...] [--data DIR] [--work DIR]
        [--out-json FILE] [--cranium-only] [--samseg --samseg-python PY]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from skullseg.conform import resample_to_grid
from skullseg.evaluate import evaluate
from skullseg.profiles import last_crossing
from skullseg.radial import sample_profiles
from skullseg.volume import Volume

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = Path(os.environ.get("SKULLSEG_DATA", REPO.parent / "shared" / "data"))
SAMSEG_SKULL = 165  # "Skull" in samseg's whole-head atlas
# Runs a command and prints the peak RSS (kB) of its process tree: used without /usr/bin/time.
RUSAGE_WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(rc)"
)


@dataclass
class Case:
    name: str
    t1: Path
    truth: Path
    truth_label: int = 2
    weak: bool = False


@dataclass
class Result:
    case: str
    method: str
    weak: bool
    wall_s: float = math.nan
    peak_mb: float = math.nan
    whole: dict = field(default_factory=dict)
    vault: dict = field(default_factory=dict)
    head: dict = field(default_factory=dict)  # the head (skin) over the top 70 mm
    error: str = ""


# -- running ---------------------------------------------------------------------------------
def reference_radii(result, mask: Volume, max_radius_mm: float = 140.0) -> np.ndarray:
    """Where a reference ``mask`` ends (mm) along each ray of ``result.surfaces``.

    ``result`` is a :class:`skullseg.pipeline.SegmentResult`; ``mask`` (any grid) is
    resampled by nearest neighbour onto its working grid and sampled every 0.5 mm
    along the rays; NaN where a ray never meets it. The per-ray benchmarks
    (``inner_skull_rays.py``, ``outer_skull_rays.py``) compare surfaces with it.
    """
    s = result.surfaces
    ref = resample_to_grid(mask, result.image_work, order=0)
    radii = np.arange(0.0, max_radius_mm, 0.5)
    prof = sample_profiles(
        ref.with_data(ref.data.astype(np.float32)), s.centre_world, s.grid, radii
    )
    return last_crossing(prof, radii, 0.5)


def timed_run(cmd: list[str], log: Path) -> tuple[int, float, float]:
    """Run ``cmd`` (output to ``log``); return (exit code, wall s, peak RSS MB)."""
    stats = log.with_suffix(".rss")
    gnu_time = Path("/usr/bin/time").exists()
    if gnu_time:
        full = ["/usr/bin/time", "-v", "-o", str(stats), *cmd]
    else:
        full = [sys.executable, "-c", RUSAGE_WRAPPER, str(stats), *cmd]
    t0 = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.call(full, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    peak_kb = math.nan
    if stats.exists():
        text = stats.read_text()
        for line in text.splitlines():
            if "Maximum resident set size" in line:
                peak_kb = float(line.rsplit(":", 1)[1])
        if not gnu_time and text.strip().isdigit():
            peak_kb = float(text)
    return rc, wall, peak_kb / 1024.0


def skullseg_command(override: str | None) -> list[str]:
    """The ``skullseg`` executable: --skullseg-cmd, next to this python, on PATH, or -c."""
    if override:
        return shlex.split(override)
    beside = Path(sys.executable).with_name("skullseg")
    if beside.exists():
        return [str(beside)]
    if shutil.which("skullseg"):
        return [str(shutil.which("skullseg"))]
    return [sys.executable, "-c", "import sys; from skullseg.cli import main; sys.exit(main())"]


def load(path: Path) -> Volume:
    img = nib.load(str(path))
    return Volume(np.asarray(img.dataobj), img.affine)


def score(result: Result, labels_path: Path, case: Case, pred_label: int) -> Result:
    """Fill ``result`` with whole-head and vault metrics of ``labels_path`` vs the reference."""
    if not labels_path.exists():
        result.error = result.error or f"no {labels_path.name}"
        return result
    pred, truth = load(labels_path), load(case.truth)
    for region in ("whole", "vault"):
        metrics = evaluate(pred, truth, pred_label, case.truth_label, region=region)
        setattr(result, region, metrics)
    inside = [int(v) for v in np.unique(pred.data) if v != 0]
    inside_ref = [int(v) for v in np.unique(truth.data) if v != 0]
    result.head = evaluate(pred, truth, inside, inside_ref, region="vault")
    return result


def run_skullseg(
    case: Case, work: Path, cmd: list[str], extra: tuple[str, ...] = (), method: str = "skullseg"
) -> Result:
    out = work / "runs" / case.name / method.replace(" ", "")
    out.mkdir(parents=True, exist_ok=True)
    rc, wall, peak = timed_run(
        [*cmd, "run", str(case.t1), "-o", str(out), "--force", "-q", *extra],
        out.parent / f"{out.name}.log",
    )
    result = Result(case.name, method, case.weak, wall, peak)
    if rc != 0:
        result.error = f"exit {rc}, see {out.parent / (out.name + '.log')}"
        return result
    return score(result, out / "labels.nii.gz", case, pred_label=2)


def samseg_available(python: str) -> bool:
    try:
        probe = subprocess.run([python, "-c", "import samseg"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def run_samseg(case: Case, work: Path, python: str, threads: int) -> Result:
    out = work / "runs" / case.name / "samseg"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        python,
        "-m",
        "samseg.cli.run_samseg",
        "-i",
        str(case.t1),
        "-o",
        str(out),
        "--threads",
        str(threads),
    ]
    rc, wall, peak = timed_run(cmd, out.parent / "samseg.log")
    result = Result(case.name, "samseg", case.weak, wall, peak)
    if rc != 0:
        result.error = f"exit {rc}, see {out.parent / 'samseg.log'}"
        return result
    return score(result, out / "seg.mgz", case, pred_label=SAMSEG_SKULL)


# -- cases -----------------------------------------------------------------------------------
def _t1_means(**means: float) -> list[str]:
    """``simulate.py`` arguments that set these T1 tissue means."""
    return [arg for name, mu in means.items() for arg in ("--t1-mean", f"{name}={mu}")]


#: Simulated heads outside the default ranges: name -> ``simulate.py`` arguments. The
#: defaults draw noise sigma 1.5-3.5 % of the brightest tissue, bias strength 0.08-0.2,
#: T1 means WM 1.0, GM 0.65, CSF 0.15, compact bone 0.10, marrow 0.50, soft tissue 0.70, fat 1.05.
VARIANTS: dict[str, list[str]] = {
    "noisy": ["--noise-range", "0.06", "0.06"],
    "bias": ["--bias-range", "0.4", "0.4"],
    "lowcontrast": _t1_means(wm=0.85, gm=0.6, fat=0.9, soft=0.6),
    "brightcsf": _t1_means(csf=0.3),
    "darkcsf": _t1_means(csf=0.05, bone=0.12),
    "nofat": _t1_means(fat=0.7),
    # bone marrow as dark as compact bone (a simulator with one bone intensity), or as
    # bright as fat (fatty marrow of older adults)
    "nomarrow": _t1_means(diploe=0.10),
    "fattymarrow": _t1_means(diploe=0.9),
    # soft tissue as dark as muscle, beside bright fat or (darkscalp) without it
    "darksoft": _t1_means(soft=0.45),
    "darkscalp": _t1_means(soft=0.5, fat=0.5),
    "0.8mm": ["--voxel-mm", "0.8"],
    "1.3mm": ["--voxel-mm", "1.3"],
    "atrophy": ["--anatomy", "atrophy"],
    "thin-skull": ["--anatomy", "thin-skull"],
    "thick-skull": ["--anatomy", "thick-skull"],
    "small-head": ["--scale", "0.9"],
    "large-head": ["--scale", "1.1"],
    "long-head": ["--scale", "0.95", "1.08", "1.0"],
}


def variant_case(seed: int, variant: str, work: Path) -> Case:
    """The simulated T1 head of ``seed`` with :data:`VARIANTS` ``[variant]``'s arguments
    (cached under ``work``), scored against its own truth."""
    folder = work / "variants" / f"seed{seed}_{variant}"
    if not ((folder / "t1.nii.gz").exists() and (folder / "truth_labels.nii.gz").exists()):
        cmd = [sys.executable, str(HERE / "simulate.py"), "--seed", str(seed)]
        cmd += ["--out", str(folder), "--contrast", "t1", *VARIANTS[variant]]
        subprocess.run(cmd, check=True)
    return Case(f"sim{seed}-{variant}", folder / "t1.nii.gz", folder / "truth_labels.nii.gz", 2)


def simulated_case(seed: int, work: Path, rotate_deg: float = 0.0) -> Case:
    """A simulated T1 head of ``seed`` (cached under ``work``); with ``rotate_deg`` > 0 its
    grid is oblique: rotated by up to that many degrees about each axis (``simulate.py
    --rotate-deg``), with the truth on the same oblique grid."""
    folder = work / "sim" / (f"seed{seed}" + (f"_rot{rotate_deg:g}" if rotate_deg > 0 else ""))
    if not ((folder / "t1.nii.gz").exists() and (folder / "truth_labels.nii.gz").exists()):
        cmd = [
            sys.executable,
            str(HERE / "simulate.py"),
            "--seed",
            str(seed),
            "--out",
            str(folder),
            "--contrast",
            "t1",
            "--rotate-deg",
            str(rotate_deg),
        ]
        subprocess.run(cmd, check=True)
    name = f"oblique{seed}" if rotate_deg > 0 else f"sim{seed}"
    return Case(name, folder / "t1.nii.gz", folder / "truth_labels.nii.gz", 2)


def clinical_case(seed: int, work: Path, slice_mm: int = 4, keep_top_mm: float = 110.0) -> Case:
    """A simulated head as a clinical scan shows it: thick axial slices, partial coverage.

    The 1 mm simulated T1 of ``seed`` is averaged over ``slice_mm`` voxels along the axis
    closest to world z (thick slices, with their partial volume), and the field of view keeps
    only the top ``keep_top_mm`` of the head (it cuts through the skull base, as many
    clinical and RIRE-like T1s do). The reference is the 1 mm truth within that field of view.
    """
    src = simulated_case(seed, work)
    folder = work / "clinical" / f"seed{seed}_{slice_mm}mm_top{keep_top_mm:g}"
    t1_path, truth_path = folder / "t1.nii.gz", folder / "truth_labels.nii.gz"
    if not (t1_path.exists() and truth_path.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        t1, truth = nib.load(str(src.t1)), nib.load(str(src.truth))
        a = t1.affine
        axis = int(np.argmax(np.abs(a[2, :3])))
        labels = np.asarray(truth.dataobj)
        heights = np.nonzero(np.any(labels > 0, axis=tuple(i for i in range(3) if i != axis)))[0]
        n_keep = int(round(keep_top_mm / np.linalg.norm(a[:3, axis])))
        start = heights.max() + 1 - n_keep if a[2, axis] > 0 else heights.min()
        start = max(int(start), 0)
        n_slices = n_keep // slice_mm
        stop = start + n_slices * slice_mm
        cut = [slice(None)] * 3
        cut[axis] = slice(start, stop)
        data = np.moveaxis(np.asarray(t1.dataobj, dtype=np.float32)[tuple(cut)], axis, 0)
        thick = data.reshape(n_slices, slice_mm, *data.shape[1:]).mean(axis=1)
        step = np.eye(4)
        step[axis, axis] = slice_mm
        step[axis, 3] = start + (slice_mm - 1) / 2.0
        nib.save(nib.Nifti1Image(np.moveaxis(thick, 0, axis), a @ step), str(t1_path))
        shift = np.eye(4)
        shift[axis, 3] = start
        nib.save(nib.Nifti1Image(labels[tuple(cut)], truth.affine @ shift), str(truth_path))
    return Case(f"clinical{seed}", t1_path, truth_path, 2)


def build_cases(
    names: list[str],
    seeds: list[int],
    data: Path,
    work: Path,
    rotate_deg: float = 10.0,
    variants: list[str] | None = None,
) -> list[Case]:
    cases = []
    truth = data / "truth"
    for name in names:
        if name == "mne_sample":
            folder = truth / "mne_sample"
            cases.append(Case(name, folder / "t1.nii.gz", folder / "truth_labels.nii.gz", 2))
        elif name == "colin27":
            folder = truth / "colin27"
            cases.append(
                Case(name, folder / "t1.nii.gz", folder / "truth_labels_weak.nii.gz", 2, weak=True)
            )
        elif name == "sim":
            cases += [simulated_case(seed, work) for seed in seeds]
        elif name == "clinical":
            cases += [clinical_case(seed, work) for seed in seeds]
        elif name == "oblique":
            cases += [simulated_case(seed, work, rotate_deg) for seed in seeds]
        elif name == "variants":
            chosen = variants or list(VARIANTS)
            cases += [variant_case(seed, v, work) for seed in seeds for v in chosen]
        else:
            raise SystemExit(f"unknown case {name!r}")
    missing = [c.name for c in cases if not (c.t1.exists() and c.truth.exists())]
    for name in missing:
        print(f"skipping {name}: data not found under {data}", file=sys.stderr)
    return [c for c in cases if c.name not in missing]


# -- report ----------------------------------------------------------------------------------
def fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(results: list[Result]) -> str:
    head = (
        "| case | method | Dice whole | Dice vault | ASSD mm | HD95 mm | NSD@2mm | wall s "
        "| peak MB |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in results:
        name = r.case + (" (weak truth)" if r.weak else "")
        w, v = r.whole, r.vault
        cells = [
            fmt(w.get("dice", math.nan)),
            fmt(v.get("dice", math.nan)),
            fmt(w.get("assd_mm", math.nan), 2),
            fmt(w.get("hd95_mm", math.nan), 2),
            fmt(w.get("nsd_2mm", math.nan)),
            fmt(r.wall_s, 1),
            fmt(r.peak_mb, 0),
        ]
        if r.error:
            cells[0] = f"error: {r.error}"
        lines.append(f"| {name} | {r.method} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "ASSD, HD95 and NSD are over the whole head; the vault is the top 70 mm of the "
        "reference skull."
    )
    return "\n".join(lines)


def head_table(results: list[Result]) -> str:
    """Markdown table of the head (skin) scores: Dice, ASSD and the volume ratio."""
    lines = [
        "| case | method | head Dice (top 70 mm) | skin ASSD mm | head volume ratio |",
        "|" + "---|" * 5,
    ]
    for r in results:
        if r.error or not r.head:
            continue
        h = r.head
        lines.append(
            f"| {r.case} | {r.method} | {fmt(h.get('dice', math.nan))} | "
            f"{fmt(h.get('assd_mm', math.nan), 2)} | {fmt(h.get('volume_ratio', math.nan))} |"
        )
    return "\n".join(lines)


def _strict(obj):
    """NaN -> None, so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    p.add_argument(
        "--cases",
        nargs="+",
        default=["mne_sample", "colin27", "sim"],
        help="mne_sample, colin27, sim, clinical (simulated heads with 4 mm axial slices and "
        "the top 110 mm in the field of view), oblique (simulated heads on a grid rotated by "
        "up to --rotate-deg about each axis), variants (simulated heads outside the default "
        "noise, bias, contrast, voxel size and anatomy)",
    )
    p.add_argument(
        "--rotate-deg",
        type=float,
        default=10.0,
        help="largest rotation per axis of the 'oblique' cases' grid (degrees)",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        help="the 'variants' cases to run (default: all)",
    )
    p.add_argument("--sim-seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "skullseg_accuracy",
        help="runs and the simulated-head cache",
    )
    p.add_argument("--out-json", type=Path, help="write all metrics here")
    p.add_argument("--skullseg-cmd", help="command to run instead of 'skullseg'")
    p.add_argument(
        "--cranium-only",
        action="store_true",
        help="also run 'skullseg run --cranium-only' (no facial bones, mandible or spine), "
        "the fair row against cranium-only references such as mne_sample's BEM",
    )
    p.add_argument("--samseg", action="store_true", help="also run samseg, if importable")
    p.add_argument("--samseg-python", default=sys.executable, help="python that has samseg")
    p.add_argument("--samseg-threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    cases = build_cases(
        args.cases, args.sim_seeds, args.data, args.work, args.rotate_deg, args.variants
    )
    if not cases:
        print("no cases to run", file=sys.stderr)
        return 1
    cmd = skullseg_command(args.skullseg_cmd)
    use_samseg = args.samseg and samseg_available(args.samseg_python)
    if args.samseg and not use_samseg:
        print(f"samseg is not importable in {args.samseg_python}: skipping it", file=sys.stderr)
    results: list[Result] = []
    for case in cases:
        print(f"{case.name}: skullseg ...", file=sys.stderr, flush=True)
        results.append(run_skullseg(case, args.work, cmd))
        if args.cranium_only:
            results.append(
                run_skullseg(case, args.work, cmd, ("--cranium-only",), "skullseg --cranium-only")
            )
        if use_samseg:
            print(f"{case.name}: samseg ...", file=sys.stderr, flush=True)
            results.append(run_samseg(case, args.work, args.samseg_python, args.samseg_threads))
    print(markdown_table(results))
    print()
    print(head_table(results))
    if use_samseg:
        for case in cases:
            ours = next(r for r in results if r.case == case.name and r.method == "skullseg")
            theirs = next(r for r in results if r.case == case.name and r.method == "samseg")
            print(f"{case.name}: samseg / skullseg wall time = {theirs.wall_s / ours.wall_s:.1f}x")
    if args.out_json:
        rows = [_strict(r.__dict__) for r in results]
        args.out_json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(not r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
