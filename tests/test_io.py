"""Tests for skullseg.io: format readers, world geometry, NIfTI writing and bad-input messages."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skullseg.errors import InputError
from skullseg.io import detect_format, input_header_summary, load_volume, save_nifti
from skullseg.volume import Volume

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
SHAPE = (20, 24, 16)
ZOOMS = (5.0, 4.5, 6.0)  # extents 100 x 108 x 96 mm: big enough for a head


def _oblique_affine() -> np.ndarray:
    """An LPS-ordered, oblique (rotated 20 degrees about z) voxel-to-RAS affine."""
    t = np.deg2rad(20.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([-1.0, -1.0, 1.0]) @ np.diag(ZOOMS)
    aff[:3, 3] = [40.5, 60.25, -30.0]
    return aff


def _data(shape=SHAPE, dtype=np.int16, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(dtype)


def _nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    img = nib.Nifti1Image(data, np.diag([*ZOOMS, 1.0]) if affine is None else affine)
    nib.save(img, str(path))
    return path


def _sitk_image(data: np.ndarray, ras_affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image (LPS geometry) holding ``data`` indexed (i, j, k)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    lps = LPS @ ras_affine
    zooms = np.linalg.norm(lps[:3, :3], axis=0)
    img.SetSpacing(zooms.tolist())
    img.SetDirection((lps[:3, :3] / zooms).ravel().tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    return img


def _message(path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        load_volume(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    assert Path(path).name in msg
    return msg


# -- round trips and formats ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz"])
def test_nifti_round_trip_oblique_lps(tmp_path, name):
    vol = Volume(_data().astype(np.float32), _oblique_affine())
    out = save_nifti(vol, tmp_path / name)
    back = load_volume(out)
    assert back.data.dtype == np.float32
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    img = nib.load(str(out))
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), vol.affine, atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_save_nifti_is_byte_identical_and_casts_labels(tmp_path):
    vol = Volume(np.rint(_data() / 300.0).astype(np.float32), _oblique_affine())
    a = save_nifti(vol, tmp_path / "a.nii.gz", dtype=np.uint8)
    b = save_nifti(vol, tmp_path / "sub" / "b.nii.gz", dtype=np.uint8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime
    img = nib.load(str(a))
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(img.dataobj), vol.data.astype(np.uint8))
    save_nifti(vol.with_data(vol.data + 1), a, dtype=np.uint8)  # overwrite in place
    assert load_volume(a).data.max() == vol.data.max() + 1
    with pytest.raises(ValueError):
        save_nifti(vol.with_data(vol.data * 100), tmp_path / "c.nii.gz", dtype=np.uint8)
    with pytest.raises(ValueError):
        save_nifti(vol, tmp_path / "c.mgz")


@pytest.mark.parametrize("suffix", [".nii.gz", ".mgz", ".nrrd", ".mha", ".mhd"])
def test_same_world_geometry_in_every_format(tmp_path, suffix):
    data, affine = _data(), _oblique_affine()
    path = tmp_path / f"head{suffix}"
    if suffix == ".nii.gz":
        save_nifti(Volume(data, affine), path)
    elif suffix == ".mgz":
        nib.save(nib.MGHImage(data, affine), str(path))
    else:
        sitk.WriteImage(_sitk_image(data, affine), str(path))
    vol = load_volume(path)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(vol.data, data.astype(np.float32))
    summary = input_header_summary(path)
    assert summary["shape"] == SHAPE and summary["dtype"] == "int16"
    assert summary["axcodes"] == "".join(nib.aff2axcodes(affine))
    np.testing.assert_allclose(summary["zooms"], ZOOMS, atol=1e-4)


def _write_dicom_series(folder: Path, data: np.ndarray, affine: np.ndarray, uid: str) -> None:
    folder.mkdir(exist_ok=True)
    img = _sitk_image(data, affine)
    d = img.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        tags = {
            "0008|0060": "MR",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0008|0018": f"{uid}.{k + 1}",
            "0020|000d": f"{uid}.0",
            "0020|000e": uid,
            "0020|0013": str(k + 1),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0020|0032": "\\".join(
                f"{v:.4f}" for v in img.TransformIndexToPhysicalPoint((0, 0, k))
            ),
            "0018|0050": f"{img.GetSpacing()[2]:.4f}",
        }
        for key, value in tags.items():
            s.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"s{uid[-1]}_{k:03d}.dcm"))
        writer.Execute(s)


def test_dicom_series_folder(tmp_path):
    data = _data(shape=(16, 18, 12))
    affine = np.diag([6.0, 5.5, 8.0, 1.0])
    affine[:3, :3] = affine[:3, :3][:, [0, 2, 1]]  # coronal slices
    affine[:3, 3] = [-45.0, 30.0, -40.0]
    _write_dicom_series(tmp_path / "s1", data, affine, "1.2.826.0.1.3680043.2.1125.1")
    assert detect_format(tmp_path / "s1") == "dicom-dir"
    vol = load_volume(tmp_path / "s1")
    # ITK orders DICOM slices along row x column, so a left-handed grid comes back with the
    # slice axis reversed: compare world geometry voxel by voxel rather than affines
    ijk = np.indices(vol.shape).reshape(3, -1).T
    src = Volume(data, affine).world_to_voxel(vol.voxel_to_world(ijk))
    np.testing.assert_allclose(src, np.rint(src), atol=1e-3)
    src = np.rint(src).astype(int)
    np.testing.assert_array_equal(vol.data[tuple(ijk.T)], data[tuple(src.T)])
    summary = input_header_summary(tmp_path / "s1")
    assert summary["shape"] == (16, 18, 12)
    np.testing.assert_allclose(summary["zooms"], (6.0, 8.0, 5.5), atol=1e-3)
    assert summary["axcodes"] == "".join(nib.aff2axcodes(vol.affine))
    # a second series in the same folder makes the choice ambiguous
    _write_dicom_series(tmp_path / "s1", data, affine, "1.2.826.0.1.3680043.2.1125.2")
    msg = _message(tmp_path / "s1")
    assert msg.endswith("folder holds 2 DICOM series; pass the folder of one series")
    one = tmp_path / "one.dcm"
    shutil.copy(tmp_path / "s1" / "s1_000.dcm", one)
    assert "a single DICOM file; pass the folder that holds the whole series" in _message(one)


def test_4d_volumes(tmp_path):
    data = _data(shape=(*SHAPE, 3))
    path = _nifti(tmp_path / "four.nii.gz", data)
    assert _message(path).endswith("4D image with 3 volumes; choose one with --volume N")
    np.testing.assert_array_equal(load_volume(path, volume_index=2).data, data[..., 2])
    assert "volume 3 does not exist" in _message(path, volume_index=3)
    single = load_volume(_nifti(tmp_path / "one.nii", data[..., :1]))
    assert single.shape == SHAPE
    mha = tmp_path / "four.mha"
    img = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(3, 2, 1, 0)), isVector=False)
    img.SetSpacing([*ZOOMS, 1.0])
    sitk.WriteImage(img, str(mha))
    np.testing.assert_array_equal(load_volume(mha, volume_index=1).data, data[..., 1])
    assert "choose one with --volume N" in _message(mha)


def test_nan_voxels_repaired_with_warning(tmp_path, caplog):
    data = _data().astype(np.float32)
    data[:2] = np.nan
    data[3, 3, 3] = np.inf
    with caplog.at_level(logging.WARNING, logger="skullseg"):
        vol = load_volume(_nifti(tmp_path / "nan.nii.gz", data))
    assert np.all(np.isfinite(vol.data)) and np.all(vol.data[:2] == 0) and vol.data[3, 3, 3] == 0
    assert "replaced by 0" in caplog.text


def test_max_voxels_limit_is_checked(tmp_path):
    path = _nifti(tmp_path / "a.nii.gz", _data())
    assert "exceeds the limit of 10^3 voxels" in _message(path, max_voxels=1000)


# -- bad input: one table, one line each -----------------------------------------------------
def _missing(d):
    return d / "nope.nii.gz"


def _txt(d):
    (d / "notes.txt").write_text("hello")
    return d / "notes.txt"


def _truncated_gz(d):
    path = _nifti(d / "cut.nii.gz", _data(dtype=np.float32))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _truncated_mgz(d):
    path = d / "cut.mgz"
    nib.save(nib.MGHImage(_data(dtype=np.float32), np.diag([*ZOOMS, 1])), str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _not_gzip(d):
    (d / "fake.nii.gz").write_bytes(b"not gzip at all" * 40)
    return d / "fake.nii.gz"


def _garbage(name):
    def make(d):
        (d / name).write_bytes(b"garbage\n" * 100)
        return d / name

    return make


def _short_nii(d):
    path = _nifti(d / "short.nii", _data(shape=(40, 40, 40)))
    path.write_bytes(path.read_bytes()[: 352 + 10_000])
    return path


def _short_mha(d):
    path = d / "short.mha"
    sitk.WriteImage(_sitk_image(_data(), np.diag([*ZOOMS, 1])), str(path))
    path.write_bytes(path.read_bytes()[:3000])
    return path


def _gzip_bomb(d):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2000, 2000, 2000))
    hdr.set_data_dtype(np.float32)
    hdr.set_sform(np.eye(4), code=1)
    hdr["vox_offset"] = 352
    path = d / "bomb.nii.gz"
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4000))
    return path


def _image(name, data=None, affine=None):
    return lambda d: _nifti(d / name, _data() if data is None else data, affine)


def _sform(name, affine):
    def make(d):
        img = nib.Nifti1Image(_data(), np.diag([*ZOOMS, 1]))
        img.set_sform(affine, code=1)
        nib.save(img, str(d / name))
        return d / name

    return make


def _mostly_nan(d):
    data = _data().astype(np.float32)
    data[: int(SHAPE[0] * 0.6)] = np.nan
    return _nifti(d / "nan.nii.gz", data)


def _empty_dir(d):
    (d / "empty").mkdir()
    return d / "empty"


def _dir_without_dicom(d):
    (d / "docs").mkdir()
    (d / "docs" / "readme.txt").write_text("no images here")
    return d / "docs"


_SINGULAR = np.array([[5.0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
_NAN_AFFINE = np.diag([5.0, 5.0, 5.0, 1.0])
_NAN_AFFINE[0, 3] = np.nan

BAD_INPUTS = [
    ("missing", _missing, "nope.nii.gz: file not found"),
    ("txt", _txt, "not a readable image (unknown format '.txt')"),
    ("truncated gz", _truncated_gz, "cut.nii.gz: corrupt or truncated gzip data"),
    ("truncated mgz", _truncated_mgz, "cut.mgz: corrupt or truncated gzip data"),
    ("not gzip", _not_gzip, "fake.nii.gz: corrupt or truncated gzip data"),
    ("garbage nii", _garbage("bad.nii"), "not a readable image (not a valid NIfTI file)"),
    ("garbage nrrd", _garbage("bad.nrrd"), "not a readable image (not a valid NRRD file)"),
    ("garbage mha", _garbage("bad.mha"), "bad.mha: not a readable image"),
    (
        "header lies",
        _short_nii,
        "short.nii: header says 40x40x40 int16 (125.0 kB) but the file holds only 9.8 kB",
    ),
    ("short mha", _short_mha, "short.mha: image data is missing or shorter than the header"),
    (
        "2D",
        _image("flat.nii.gz", _data(shape=(64, 64))),
        "flat.nii.gz: 2D image (64x64); a 3D head volume is needed",
    ),
    (
        "single slice",
        _image("slice.nii.gz", _data(shape=(64, 64, 1))),
        "2D image (64x64); a 3D head volume is needed",
    ),
    (
        "constant",
        _image("zero.nii.gz", np.zeros(SHAPE, np.int16)),
        "zero.nii.gz: image is constant (all voxels = 0)",
    ),
    ("mostly NaN", _mostly_nan, "nan.nii.gz: 60.0% of voxels are NaN or infinite (more than 50%)"),
    (
        "zero voxel size",
        _sform("flat0.nii", np.diag([0.0, 5.0, 5.0, 1.0])),
        "flat0.nii: voxel size 0.0x5.0x5.0 mm is not plausible (need 0.1–10 mm)",
    ),
    (
        "huge voxels",
        _sform("big.nii", np.diag([50.0, 5.0, 5.0, 1.0])),
        "voxel size 50.0x5.0x5.0 mm is not plausible",
    ),
    (
        "tiny",
        _image("tiny.nii.gz", _data(shape=(10, 10, 10)), np.diag([2.0, 2.0, 2.0, 1.0])),
        "tiny.nii.gz: image of 10x10x10 voxels (2x2x2 cm) is too small to hold a head",
    ),
    (
        "gzip bomb",
        _gzip_bomb,
        "bomb.nii.gz: decompressed size 29.8 GB exceeds the limit of 512^3 voxels",
    ),
    ("singular", _sform("sing.nii", _SINGULAR), "sing.nii: voxel-to-world affine is singular"),
    ("nan affine", _sform("nanaff.nii", _NAN_AFFINE), "affine contains NaN or infinite values"),
    ("empty dir", _empty_dir, "empty: no DICOM series found in this folder"),
    ("dir without DICOM", _dir_without_dicom, "docs: no DICOM series found in this folder"),
]


@pytest.mark.parametrize(
    "make, expected", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_gives_one_line_error(tmp_path, make, expected):
    path = make(tmp_path)
    assert expected in _message(path)


def test_partial_coverage_slab_is_accepted(tmp_path):
    # 200 x 200 x 25 mm: two axes >= 80 mm and a third >= 20 mm
    data = _data(shape=(40, 40, 5))
    vol = load_volume(_nifti(tmp_path / "slab.nii", data, np.diag([5.0, 5.0, 5.0, 1.0])))
    assert vol.shape == (40, 40, 5)


# -- property: NIfTI round trip keeps data and world coordinates ------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(*[st.integers(9, 13)] * 3),
    zooms=st.tuples(*[st.floats(9.0, 10.0)] * 3),
    dtype=st.sampled_from([np.uint8, np.int16, np.float32, np.float64]),
    perm=st.permutations([0, 1, 2]),
    flips=st.tuples(*[st.booleans()] * 3),
    offset=st.tuples(*[st.floats(-200.0, 200.0)] * 3),
    seed=st.integers(0, 2**31),
    gz=st.booleans(),
)
def test_round_trip_property(tmp_path_factory, shape, zooms, dtype, perm, flips, offset, seed, gz):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        data = (rng.normal(size=shape) * 100).astype(dtype)
    else:
        data = rng.integers(0, 200, shape).astype(dtype)
    data.flat[0], data.flat[-1] = 0, 7  # never constant
    affine = np.diag([0.0, 0.0, 0.0, 1.0])
    for col, row in enumerate(perm):
        affine[row, col] = zooms[col] * (-1.0 if flips[col] else 1.0)
    affine[:3, 3] = offset
    vol = Volume(data, affine)
    path = tmp_path_factory.mktemp("rt") / ("v.nii.gz" if gz else "v.nii")
    back = load_volume(save_nifti(vol, path, dtype=dtype))
    np.testing.assert_array_equal(back.data, data.astype(np.float32))
    ijk = np.array([[0, 0, 0], [s - 1 for s in shape], rng.integers(0, min(shape), 3)])
    np.testing.assert_allclose(back.voxel_to_world(ijk), vol.voxel_to_world(ijk), atol=1e-3)


# -- real heads (skipped without the shared data) -----------------------------------------------
def _data_dir() -> Path:
    env = os.environ.get("SKULLSEG_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


REAL = sorted(_data_dir().glob("heads/*.nii.gz")) + sorted(_data_dir().glob("truth/*/t1.nii.gz"))


@pytest.mark.skipif(not REAL, reason="shared head data not found")
@pytest.mark.parametrize("path", REAL, ids=[f"{p.parent.name}/{p.name}" for p in REAL])
def test_real_heads_load(path):
    vol = load_volume(path)
    assert vol.data.dtype == np.float32 and vol.data.ndim == 3
    assert np.all(np.isfinite(vol.data)) and vol.data.max() > vol.data.min()
    assert input_header_summary(path)["shape"] == vol.shape
