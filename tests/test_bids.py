"""``skullseg bids`` on a tiny BIDS dataset built on the fly (3 mm synthetic heads)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pytest

from skullseg import bids
from skullseg.errors import InputError
from skullseg.io import save_nifti
from skullseg.phantom import make_phantom

VOXEL_MM = 3.0  # tiny heads and a 3 mm working grid: a few seconds a subject
GOOD = ("sub-01", "sub-02_ses-a", "sub-03")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """sub-01 (with a T2w), sub-02 (session a), sub-03, and sub-04 whose T1w is garbage."""
    root = tmp_path_factory.mktemp("raw")
    desc = {"Name": "tiny", "BIDSVersion": "1.9.0", "DatasetType": "raw"}
    (root / "dataset_description.json").write_text(json.dumps(desc))
    for seed, prefix in enumerate(GOOD):
        anat = root.joinpath(*prefix.split("_"), "anat")
        ph = make_phantom(3.0, seed=seed)
        save_nifti(ph.t1, anat / f"{prefix}_T1w.nii.gz")
        if seed == 0:
            save_nifti(ph.t2, anat / f"{prefix}_T2w.nii.gz")
    (root / "sub-04" / "anat").mkdir(parents=True)
    (root / "sub-04" / "anat" / "sub-04_T1w.nii.gz").write_bytes(b"\x00garbage" * 300)
    (root / "derivatives" / "sub-99" / "anat").mkdir(parents=True)  # never searched
    return root


@pytest.fixture(scope="module")
def derivs(raw, tmp_path_factory):
    """The participant level with two processes: (output folder, exit code)."""
    out = tmp_path_factory.mktemp("out") / "skullseg"
    rc = bids.bids_command(raw, out, "participant", n_jobs=2, voxel_mm=VOXEL_MM)
    return out, rc


def _job(raw, prefix):
    return next(j for j in bids.find_participants(raw) if j.prefix == prefix)


def test_discovery(raw):
    jobs = bids.find_participants(raw)
    assert [j.prefix for j in jobs] == [*GOOD, "sub-04"]
    assert jobs[1].session == "a" and jobs[0].session is None and jobs[0].t2 is None
    with_t2 = bids.find_participants(raw, ["sub-01", "03"], with_t2=True)
    assert [j.subject for j in with_t2] == ["01", "03"]
    assert with_t2[0].t2.name == "sub-01_T2w.nii.gz" and with_t2[1].t2 is None
    assert [j.prefix for j in bids.find_participants(raw, sessions=["a"])] == ["sub-02_ses-a"]
    with pytest.raises(InputError, match="participant.*07"):
        bids.find_participants(raw, ["01", "07"])
    paths = bids.derivative_paths("OUT", jobs[1])
    assert (
        paths["dseg"].as_posix() == "OUT/sub-02/ses-a/anat/sub-02_ses-a_desc-skullseg_dseg.nii.gz"
    )
    assert paths["dseg_tsv"].name == "sub-02_ses-a_desc-skullseg_dseg.tsv"


def test_participant_level_layout_and_failure_isolation(raw, derivs):
    out, rc = derivs
    assert rc == 1
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["Name"] and desc["BIDSVersion"] and desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "skullseg" and desc["GeneratedBy"][0]["Version"]
    for prefix in GOOD:
        job = _job(raw, prefix)
        assert bids.is_complete(out, job)
        report = json.loads(bids.derivative_paths(out, job)["report"].read_text())
        assert report["status"] == "ok" and report["volumes_ml"]["skull"] > 0
    bad = bids.derivative_paths(out, _job(raw, "sub-04"))
    failed = json.loads(bad["report"].read_text())
    assert failed["status"] == "failed" and "sub-04_T1w.nii.gz" in failed["error"]
    assert "\n" not in failed["error"] and not bad["dseg"].exists()
    assert not [p for p in out.rglob(".*") if p.is_dir()]  # no temporary folders left


def test_resume_skips_complete_and_force_redoes(raw, derivs):
    out, _ = derivs
    jobs = [_job(raw, p) for p in GOOD]
    mtimes = {p: p.stat().st_mtime_ns for j in jobs for p in bids.derivative_paths(out, j).values()}
    recs = bids.run_participants(jobs, out, n_jobs=2, voxel_mm=VOXEL_MM)
    assert [r["status"] for r in recs] == ["skipped"] * 3
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert bids.run_participant(_job(raw, "sub-04"), out)["status"] == "failed"  # retried
    rec = bids.run_participant(jobs[0], out, force=True, voxel_mm=VOXEL_MM)
    assert rec["status"] == "ok"
    report = bids.derivative_paths(out, jobs[0])["report"]
    assert report.stat().st_mtime_ns > mtimes[report]


def test_group_level_table_and_html(raw, derivs):
    out, _ = derivs
    assert bids.bids_command(raw, out, "group") == 0
    with open(out / "skullseg_group.tsv", newline="") as f:
        rows = {r["prefix"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert sorted(rows) == sorted([*GOOD, "sub-04"])
    assert rows["sub-04"]["status"] == "failed" and "gzip" in rows["sub-04"]["error"]
    assert rows["sub-04"]["skull_ml"] == "n/a"
    ok = rows["sub-02_ses-a"]
    assert ok["session_id"] == "ses-a" and float(ok["skull_ml"]) > 0
    assert float(ok["skull_thickness_median_mm"]) > 0 and "thick slices" in ok["warnings"]
    page = (out / "skullseg_group.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "sub-04" in page


def test_print_slurm(raw, tmp_path, capsys):
    out = tmp_path / "out"
    rc = bids.bids_command(raw, out, "participant", with_t2=True, print_slurm=True)
    script = capsys.readouterr().out
    assert rc == 0 and not out.exists()
    assert "#SBATCH --array=0-3\n" in script and "LABELS=(01 02 03 04)" in script
    assert f"skullseg bids {raw} {out} participant" in script
    assert '--participant-label "${LABELS[$SLURM_ARRAY_TASK_ID]}" --t2' in script
    if shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_memory_cap(monkeypatch):
    import skullseg.parallel

    monkeypatch.setattr(skullseg.parallel, "available_memory_bytes", lambda: 9 * 1024**3)
    assert bids.memory_capped_jobs(4, mem_per_job_gb=4.0) == 2
    assert bids.memory_capped_jobs(1, mem_per_job_gb=40.0) == 1


def test_dask_local_cluster(raw, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    out = tmp_path / "dask"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        rc = bids.bids_command(
            raw,
            out,
            "participant",
            participant_labels=["01", "04"],
            executor="dask",
            scheduler=cluster.scheduler_address,
            voxel_mm=VOXEL_MM,
        )
    assert rc == 1
    assert bids.is_complete(out, _job(raw, "sub-01"))
    failed = json.loads(bids.derivative_paths(out, _job(raw, "sub-04"))["report"].read_text())
    assert failed["status"] == "failed"


def test_newer_pipeline_outputs_are_kept(raw, tmp_path, monkeypatch):
    import skullseg.pipeline

    def fake_run(t1, outdir, **kwargs):
        outdir.mkdir()
        for name in (*skullseg.pipeline.OUTPUT_FILES, "bem_inner_skull.surf.gii"):
            (outdir / name).parent.mkdir(parents=True, exist_ok=True)
            (outdir / name).write_text("x")
        return {"volumes_ml": {"skull": 1.0}, "warnings": []}

    monkeypatch.setattr(skullseg.pipeline, "run", fake_run)
    job = _job(raw, "sub-02_ses-a")
    assert bids.run_participant(job, tmp_path)["status"] == "ok"
    anat = tmp_path / "sub-02" / "ses-a" / "anat"
    assert (anat / "sub-02_ses-a_desc-skullseg_beminnerskull.surf.gii").is_file()
    top_level = {name.split("/")[0] for name in skullseg.pipeline.OUTPUT_FILES}
    n_files = len(top_level) + 1  # sub-folders such as bem/ move as one entry
    assert bids.is_complete(tmp_path, job) and len(list(anat.iterdir())) == n_files
