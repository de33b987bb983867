"""The command line: the output contract, errors as one line, and no partial outputs."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import trimesh

from skullseg import labels as L
from skullseg.cli import main
from skullseg.io import save_nifti
from skullseg.phantom import make_phantom
from skullseg.pipeline import OUTPUT_FILES


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "head.nii.gz"
    save_nifti(make_phantom(2.0, seed=3).t1, path)
    return path


@pytest.fixture(scope="module")
def run_out(phantom_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "out"
    assert main(["run", str(phantom_file), "-o", str(out), "-q"]) == 0
    return out


def test_run_writes_the_output_contract(run_out, phantom_file):
    for name in OUTPUT_FILES:
        assert (run_out / name).is_file(), name
    lab = nib.load(run_out / "labels.nii.gz")
    src = nib.load(phantom_file)
    assert lab.shape == src.shape
    assert np.allclose(lab.affine, src.affine, atol=1e-4)
    assert lab.get_data_dtype() == np.uint8
    skull = np.asarray(nib.load(run_out / "skull_mask.nii.gz").dataobj)
    assert set(np.unique(skull)) == {0, 1}
    assert np.array_equal(skull == 1, np.asarray(lab.dataobj) == L.SKULL)
    tsv = (run_out / "labels.tsv").read_text().splitlines()
    assert tsv[0] == "index\tname\tcolor" and tsv[3].startswith("2\tskull")


def test_report_contents(run_out):
    rep = json.loads((run_out / "report.json").read_text())
    for key in (
        "skullseg_version",
        "input",
        "options",
        "timings_s",
        "volumes_ml",
        "skull_mesh",
        "warnings",
    ):
        assert key in rep
    assert rep["volumes_ml"]["skull"] > 100
    assert rep["options"]["modality"] == "t1"  # auto-detected: the phantom's CSF is dark
    assert rep["skull_mesh"]["watertight"] is True


def test_stl_is_watertight_and_outward(run_out):
    mesh = trimesh.load(run_out / "skull.stl")
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.volume > 0
    assert len(mesh.faces) <= 400_000


def test_existing_output_needs_force(run_out, phantom_file, capsys):
    before = sorted(p.name for p in run_out.iterdir())
    assert main(["run", str(phantom_file), "-o", str(run_out), "-q"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err
    assert sorted(p.name for p in run_out.iterdir()) == before


@pytest.mark.parametrize("content, problem", [(None, "not found"), (b"hello", "not a readable")])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys, content, problem):
    bad = tmp_path / ("missing.nii.gz" if content is None else "bad.txt")
    if content is not None:
        bad.write_bytes(content)
    out = tmp_path / "out"
    assert main(["run", str(bad), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and bad.name in err and problem in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.parametrize("value", ["0", "-1", "9", "fine"])
def test_bad_voxel_size_is_refused(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["run", str(tmp_path / "t1.nii.gz"), "-o", str(tmp_path / "out"), "--voxel-mm", value])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--voxel-mm" in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "out").exists()


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "skullseg" in capsys.readouterr().out
    for cmd in ("run", "demo", "evaluate"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "usage" in capsys.readouterr().out


def test_shell_mesh_and_ply(phantom_file, tmp_path):
    out = tmp_path / "shell"
    assert (
        main(
            [
                "run",
                str(phantom_file),
                "-o",
                str(out),
                "-q",
                "--skull-mesh",
                "shell",
                "--mesh-format",
                "ply",
                "--cranium-only",
                "--no-atlas-refinement",
                "--voxel-mm",  # the shell comes from the surfaces: any grid will do
                "2",
            ]
        )
        == 0
    )
    for name in ("skull.stl", "skull.ply"):
        mesh = trimesh.load(out / name)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        assert len(mesh.split(only_watertight=True)) == 2  # outer wall and inner wall
    rep = json.loads((out / "report.json").read_text())
    assert rep["skull_mesh"]["self_intersecting"] is False
    assert rep["options"]["skull_mesh"] == "shell"
    assert rep["options"]["cranium_only"] is True
    assert rep["options"]["atlas_refinement"] is False
    assert "atlas refinement" not in rep["timings_s"]
