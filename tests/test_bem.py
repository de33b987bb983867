"""BEM surfaces: icosphere fit, nesting with a Euclidean gap, MNE checks, files MNE reads."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from skullseg.bem import BEM_NAMES, bem_surfaces, check_bem, mne_icosphere, write_bem
from skullseg.evaluate import surface_to_surface_distance, tkr_to_world
from skullseg.geometry import points_to_mesh
from skullseg.mesh import check_mesh
from skullseg.radial import sphere_grid
from skullseg.skull import SkullSurfaces


@pytest.fixture(scope="module")
def thin_head():
    """A 2 mm phantom whose temporal bone thins to 1.5 mm, and skullseg's result on it."""
    from skullseg.phantom import make_phantom
    from skullseg.pipeline import segment

    ph = make_phantom(2.0, seed=1, thin_temporal_mm=1.5)
    return ph, segment(ph.t1)


@pytest.fixture(params=["plain", "thin_temporal"])
def head(request, phantom_15, segmented_15):
    """(input image, SegmentResult): the session's 1.5 mm phantom, then the thin one."""
    if request.param == "plain":
        return phantom_15.t1, segmented_15
    ph, result = request.getfixturevalue("thin_head")
    return ph.t1, result


def _min_dist(a, b) -> float:
    """Smallest vertex-to-triangle distance between two surfaces, both ways."""
    return float(
        min(
            points_to_mesh(a.vertices, b.vertices, b.faces).min(),
            points_to_mesh(b.vertices, a.vertices, a.faces).min(),
        )
    )


def _bumpy_surfaces(radial_gap_mm: float) -> SkullSurfaces:
    """Steep ridges (slopes up to ~50 degrees) with a tiny radial gap between the layers."""
    g = sphere_grid(4)
    d = g.directions
    bump = 10 * np.sin(8 * np.arctan2(d[:, 1], d[:, 0])) * (1 - d[:, 2] ** 2) + 10 * d[:, 2] ** 3
    inner = 70.0 + bump
    outer, scalp = inner + radial_gap_mm, inner + 2 * radial_gap_mm
    return SkullSurfaces(np.array([1.0, -2.0, 3.0]), g, inner - 3, inner, outer, scalp)


# -- icosphere -----------------------------------------------------------------------------
@pytest.mark.parametrize("grade, n_vertices", [(3, 642), (4, 2562), (5, 10242)])
def test_icosphere_sizes_and_topology(grade, n_vertices):
    s = mne_icosphere(grade)
    assert s.vertices.shape == (n_vertices, 3) and len(s.faces) == 2 * n_vertices - 4
    assert np.allclose(np.linalg.norm(s.vertices, axis=1), 1.0)
    info = check_mesh(s)
    assert info["watertight"] and info["outward_normals"] and info["euler_number"] == 2


def test_icosphere_has_mne_triangle_order():
    surface = pytest.importorskip("mne.surface")
    for grade in range(5):
        ours, theirs = mne_icosphere(grade), surface._get_ico_surface(grade)
        assert np.array_equal(ours.faces, theirs["tris"])
        assert np.abs(ours.vertices - theirs["rr"]).max() < 1e-3


# -- gap enforcement on a hard synthetic case ----------------------------------------------
@pytest.mark.parametrize("gap_mm", [1.0, 2.0])
def test_euclidean_gap_on_oblique_ridges(gap_mm):
    surfs = bem_surfaces(_bumpy_surfaces(0.3), ico=3, gap_mm=gap_mm)
    report = check_bem(surfs)
    assert report["ok"], report
    assert report["min_gap_inner_outer_skull_mm"] >= gap_mm
    assert report["min_gap_outer_skull_skin_mm"] >= gap_mm
    # the radial gap alone would not do: on the slopes it is well above the target
    radial = np.linalg.norm(surfs["outer_skull"].vertices - [1, -2, 3], axis=1) - np.linalg.norm(
        surfs["inner_skull"].vertices - [1, -2, 3], axis=1
    )
    assert radial.max() > 1.2 * gap_mm


def test_check_bem_flags_crossing_and_defects():
    s = mne_icosphere(2)
    from skullseg.mesh import Surface

    surfs = {n: Surface(s.vertices * r, s.faces) for n, r in zip(BEM_NAMES, (80, 86, 92))}
    assert check_bem(surfs)["ok"]
    crossing = dict(surfs, outer_skull=Surface(s.vertices * [1.0, 1.0, 0.9] * 86, s.faces))
    r = check_bem(crossing)
    assert not r["ok"] and not r["inner_skull_inside_outer_skull"]
    inward = dict(surfs, outer_skin=Surface(s.vertices * 92, s.faces[:, ::-1]))
    r = check_bem(inward)
    assert not r["ok"] and not r["outer_skin"]["complete"]
    holed = dict(surfs, inner_skull=Surface(s.vertices * 80, s.faces[1:]))
    r = check_bem(holed)
    assert not r["ok"] and not r["inner_skull"]["closed"]


def test_bad_arguments():
    with pytest.raises(ValueError):
        bem_surfaces(_bumpy_surfaces(3.0), ico=6)
    with pytest.raises(ValueError):
        bem_surfaces(_bumpy_surfaces(3.0), gap_mm=0)


# -- the skull base -------------------------------------------------------------------------
def _shell_with_skull_base(voxel_mm: float = 2.0):
    """Concentric surfaces (inner 60, outer 66, scalp 80 mm) and labels: the shell, a
    'clivus' of bone and air cells 66-76 mm below, bone 84-90 mm below (past a gap) and
    bone over the top beyond the outer skull (none of them on the surfaces)."""
    from skullseg.labels import AIR_CAVITY, SCALP, SKULL
    from skullseg.volume import Volume

    n = int(200 / voxel_mm)
    aff = np.diag([voxel_mm] * 3 + [1.0])
    aff[:3, 3] = -100.0
    xyz = np.stack(np.meshgrid(*[np.arange(n) * voxel_mm - 100.0] * 3, indexing="ij"))
    r = np.linalg.norm(xyz, axis=0)
    z = xyz[2] / np.maximum(r, 1e-9)
    lab = np.where(r < 80, SCALP, 0).astype(np.uint8)
    lab[(r >= 60) & (r < 66)] = SKULL
    down, up = z < -0.85, z > 0.85
    lab[down & (r >= 66) & (r < 71)] = SKULL
    lab[down & (r >= 71) & (r < 76)] = AIR_CAVITY
    lab[down & (r >= 84) & (r < 90)] = SKULL  # a vertebra: beyond a 8 mm gap
    lab[up & (r >= 66) & (r < 72)] = SKULL  # over the vault: not the skull base
    g = sphere_grid(4)
    s = SkullSurfaces(np.zeros(3), g, np.full(g.n, 57.0), np.full(g.n, 60.0),
                      np.full(g.n, 66.0), np.full(g.n, 80.0))  # fmt: skip
    return s, Volume(lab, aff)


def test_outer_skull_takes_in_the_skull_base():
    s, labels = _shell_with_skull_base()
    plain = bem_surfaces(s, ico=3)
    based = bem_surfaces(s, labels=labels, ico=3)
    r_plain = np.linalg.norm(plain["outer_skull"].vertices, axis=1)
    r_based = np.linalg.norm(based["outer_skull"].vertices, axis=1)
    dirs = mne_icosphere(3).vertices
    assert np.allclose(r_plain, 66.0, atol=0.01)
    below = dirs[:, 2] < -0.95
    assert np.all(np.abs(r_based[below] - 76.0) < 1.5), r_based[below]  # not the vertebra
    # the vault keeps its surface (the bone over the top is not the skull base); near the
    # horizon the interpolation onto the icosphere spreads the move by hundredths of a mm
    assert np.allclose(r_based[dirs[:, 2] > 0.6], 66.0, atol=1e-6)
    assert np.allclose(r_based[dirs[:, 2] > 0.0], 66.0, atol=0.1)
    assert np.all(r_based >= r_plain - 1e-9)
    report = check_bem(based)
    assert report["ok"] and report["min_gap_outer_skull_skin_mm"] >= 1.0
    off = bem_surfaces(s, labels=labels, skull_base_extent_mm=0.0, ico=3)
    assert np.allclose(off["outer_skull"].vertices, plain["outer_skull"].vertices)


# -- synthetic heads -----------------------------------------------------------------------
def test_ico4_bem_on_phantoms_is_nested_and_complete(head):
    _, result = head
    surfs = bem_surfaces(result.surfaces, labels=result.labels_work, ico=4)
    for name in BEM_NAMES:
        assert surfs[name].vertices.shape == (2562, 3) and surfs[name].faces.shape == (5120, 3)
    report = check_bem(surfs)
    assert report["ok"], report
    assert report["inner_skull"]["genus"] == 0 and report["outer_skin"]["euler_number"] == 2
    assert report["min_gap_inner_outer_skull_mm"] >= 1.0
    assert report["min_gap_outer_skull_skin_mm"] >= 1.0
    assert not check_mesh(surfs["outer_skull"])["self_intersecting"]


def test_larger_gap_is_honoured(head):
    surfs = bem_surfaces(head[1].surfaces, labels=head[1].labels_work, ico=4, gap_mm=2.0)
    for a, b in (("inner_skull", "outer_skull"), ("outer_skull", "outer_skin")):
        assert _min_dist(surfs[a], surfs[b]) >= 2.0


def test_write_bem_round_trip(thin_head, tmp_path):
    from nibabel.freesurfer import read_geometry

    ph, result = thin_head
    surfs = bem_surfaces(result.surfaces, ico=4)
    paths = write_bem(surfs, tmp_path / "subj", ph.t1.affine, ph.t1.shape)
    assert sorted(p.name for p in paths) == sorted(
        f"{n}.{ext}" for n in BEM_NAMES for ext in ("surf", "gii", "stl")
    )
    assert not [p for p in (tmp_path / "subj" / "bem").iterdir() if p.name.startswith(".")]
    import nibabel as nib

    m = tkr_to_world(ph.t1.affine, ph.t1.shape)
    for name in BEM_NAMES:
        tkr, faces, meta = read_geometry(tmp_path / "subj" / "bem" / f"{name}.surf", True)
        assert np.array_equal(faces, surfs[name].faces)
        world = tkr @ m[:3, :3].T + m[:3, 3]
        gii = nib.load(tmp_path / "subj" / "bem" / f"{name}.gii").darrays[0].data
        assert np.abs(world - gii).max() < 1e-3
        assert np.abs(tkr + meta["cras"] - gii).max() < 1e-3  # volume info: world = tkr + cras
        assert list(meta["volume"]) == list(ph.t1.shape)
    # the tkr origin is the centre voxel of the input grid
    centre_world = ph.t1.voxel_to_world(np.array(ph.t1.shape)[None] / 2.0)[0]
    assert np.allclose(m[:3, 3], centre_world)


def _mne_model_and_solution(subjects_dir, subject: str, ico: int | None):
    """make_bem_model + make_bem_solution with warnings as errors; returns (model, log)."""
    mne = pytest.importorskip("mne")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: records.append(rec.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("mne")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = mne.make_bem_model(
                subject, ico=ico, conductivity=(0.3, 0.006, 0.3), subjects_dir=subjects_dir
            )
            solution = mne.make_bem_solution(model)
    finally:
        logger.removeHandler(handler)
    assert solution["solution"].shape[0] == sum(s["np"] for s in model)
    text = "\n".join(records).lower()
    assert "intersect" not in text and "not completely inside" not in text
    return model, text


def test_mne_builds_and_solves_the_written_bem(thin_head, tmp_path):
    """MNE reads our ico-4 files, downsamples them to ico 3 itself and solves the model."""
    ph, result = thin_head
    write_bem(bem_surfaces(result.surfaces, ico=4), tmp_path / "phantom", ph.t1.affine, ph.t1.shape)
    model, text = _mne_model_and_solution(tmp_path, "phantom", ico=3)
    assert [s["np"] for s in model] == [642, 642, 642]
    assert "passed the basic topology checks" in text


# -- the real head -------------------------------------------------------------------------
@pytest.mark.slow
def test_mne_sample_bem(data_dir, tmp_path):
    from skullseg.evaluate import read_freesurfer_surface
    from skullseg.io import load_volume
    from skullseg.pipeline import segment

    folder = data_dir / "truth" / "mne_sample"
    if not (folder / "t1.nii.gz").exists():
        pytest.skip("mne_sample not in the shared data")
    t1 = load_volume(folder / "t1.nii.gz")
    surfs = bem_surfaces(segment(t1).surfaces, ico=4)
    report = check_bem(surfs)
    assert report["ok"], report
    write_bem(surfs, tmp_path / "sample", t1.affine, t1.shape)
    _mne_model_and_solution(tmp_path, "sample", ico=3)
    print("\nmne_sample BEM vs reference (mm):")
    for name in BEM_NAMES:
        v, f = read_freesurfer_surface(folder / "bem" / f"{name}.surf", reference=t1)
        d = surface_to_surface_distance(surfs[name].vertices, surfs[name].faces, v, f)
        print(f"  {name:12s} mean {d['mean_symmetric']:.2f}  p95 {d['p95_symmetric']:.2f}")
        assert d["mean_symmetric"] < 6.0
