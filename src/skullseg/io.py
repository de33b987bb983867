"""Reading head images (NIfTI, MGH/MGZ, NRRD, MetaImage, DICOM folder) and writing NIfTI.

nibabel reads NIfTI and MGH; SimpleITK reads the rest, whose LPS geometry becomes RAS with
``diag(-1, -1, 1, 1) @ lps_affine``. Any problem with an input raises
:class:`~skullseg.errors.InputError` with one line naming the file and the problem; the header
(dimensions, declared size, geometry) is checked before any voxel data is decompressed.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.filebasedimages import ImageFileError
from numpy.typing import DTypeLike, NDArray

from .errors import InputError
from .fileutil import atomic_write_bytes
from .io_checks import (
    check_declared_size,
    check_dims,
    check_geometry,
    check_values,
    zooms_mm,
)
from .volume import Volume

__all__ = ["load_volume", "save_nifti", "detect_format", "input_header_summary"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SUFFIXES = {
    **dict.fromkeys((".nii.gz", ".nii"), "nifti"),
    **dict.fromkeys((".mgz", ".mgh"), "mgh"),
    **dict.fromkeys((".nrrd", ".nhdr"), "nrrd"),
    **dict.fromkeys((".mha", ".mhd"), "metaimage"),
}
_FORMAT_NAMES = {"nifti": "NIfTI", "mgh": "MGH", "nrrd": "NRRD", "metaimage": "MetaImage"}
_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32")

Loader = Callable[[int], "tuple[NDArray[np.float32], NDArray[np.float64]]"]


@dataclass(frozen=True)
class _Header:
    """What a file declares, read without touching the voxel data."""

    raw_shape: tuple[int, ...]
    dtype: np.dtype
    affine: NDArray[np.float64]  # voxel -> RAS mm
    data_bytes: int | None = None  # raw data bytes present on disk (uncompressed files only)

    @property
    def shape3(self) -> tuple[int, int, int]:
        return tuple((self.raw_shape + (1, 1, 1))[:3])  # type: ignore[return-value]

    @property
    def n_volumes(self) -> int:
        return math.prod(self.raw_shape[3:])


# -- public API ----------------------------------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """Name the format of ``path`` from its extension (a folder is a DICOM series).

    Returns
    -------
    str
        ``"nifti"``, ``"mgh"``, ``"nrrd"``, ``"metaimage"`` or ``"dicom-dir"``.

    Raises
    ------
    InputError
        The path does not exist, or is in no supported format.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        return "dicom-dir"
    name = path.name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    if name.endswith((".dcm", ".ima")) or _magic(path, 128, 4) == b"DICM":
        raise InputError(
            f"{path}: a single DICOM file; pass the folder that holds the whole series"
        )
    raise InputError(f"{path}: not a readable image (unknown format '{path.suffix}')")


def input_header_summary(path: str | Path) -> dict:
    """Describe an input image for the report from its header alone (no voxel data is read).

    Returns
    -------
    dict
        ``format``, ``shape`` (3 spatial dims), ``n_volumes``, ``zooms`` (mm), ``dtype`` (on disk)
        and ``axcodes`` (e.g. ``"RAS"``, from the RAS affine).
    """
    path = Path(path)
    fmt = detect_format(path)
    header, _ = _open(path, fmt)
    return {
        "format": fmt,
        "shape": header.shape3,
        "n_volumes": header.n_volumes,
        "zooms": tuple(round(float(z), 6) for z in zooms_mm(header.affine)),
        "dtype": header.dtype.name,
        "axcodes": _axcodes(header.affine),
    }


def load_volume(
    path: str | Path, *, volume_index: int | None = None, max_voxels: int = 512**3
) -> Volume:
    """Read a 3D head image as float32 voxels with its voxel-to-RAS-mm affine.

    Parameters
    ----------
    path : str or Path
        NIfTI, MGH/MGZ, NRRD, MetaImage file, or a folder holding one DICOM series.
    volume_index : int, optional
        Which volume of a 4D image to read (0-based). A 4D image with one volume needs none.
    max_voxels : int
        Refuse files that declare more voxels than this (all volumes counted), checked from
        the header before any data is decompressed.

    Returns
    -------
    Volume
        float32 data of shape (I, J, K); NaN/infinite voxels are replaced by 0 (with a warning).

    Raises
    ------
    InputError
        Missing, unreadable or corrupt file; not 3D; 4D without a volume; declared size too
        large; voxel size outside 0.1-10 mm; singular affine; field of view too small for a
        head (see ``skullseg.io_checks.MIN_EXTENTS_MM``); constant image; mostly non-finite voxels.
    """
    path = Path(path)
    fmt = detect_format(path)
    header, loader = _open(path, fmt)
    index = check_dims(path, header.raw_shape, volume_index)
    check_declared_size(path, header, max_voxels)
    check_geometry(path, header.affine, header.shape3)
    with _library_errors(path, fmt):
        data, affine = loader(index)
    if affine is not header.affine:
        check_geometry(path, affine, header.shape3)
    return Volume(check_values(path, data.astype(np.float32, copy=False)), affine)


def save_nifti(vol: Volume, path: str | Path, *, dtype: DTypeLike | None = None) -> Path:
    """Write ``vol`` as NIfTI-1 (``.nii`` or ``.nii.gz``) atomically, with reproducible bytes.

    Both sform and qform hold ``vol.affine`` (code 1, scanner). The file is written to a
    temporary file in the target folder and moved into place with :func:`os.replace`;
    ``.nii.gz`` is compressed with a zero gzip timestamp, so equal input gives equal bytes.

    Parameters
    ----------
    vol : Volume
        Image to write.
    path : str or Path
        Output file; must end in ``.nii`` or ``.nii.gz``. Missing parent folders are created.
    dtype : dtype, optional
        On-disk type (e.g. ``np.uint8`` for labels). Default: the data's own type (bool is
        written as uint8). Floats written as integers are rounded; out-of-range values raise.

    Returns
    -------
    Path
    """
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{path}: save_nifti writes .nii or .nii.gz files")
    data = _for_writing(vol.data, dtype)
    img = nib.Nifti1Image(data, vol.affine, dtype=data.dtype)
    img.header.set_xyzt_units("mm")
    img.set_sform(vol.affine, code=1)
    img.set_qform(vol.affine, code=1)
    raw = img.to_bytes()
    if name.endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
            gz.write(raw)
        raw = buf.getvalue()
    atomic_write_bytes(path, raw)
    return path


# -- opening files: header plus a loader -------------------------------------------------------
def _open(path: Path, fmt: str) -> tuple[_Header, Loader]:
    with _library_errors(path, fmt):
        if fmt in ("nifti", "mgh"):
            return _open_nibabel(path)
        if fmt == "dicom-dir":
            return _open_dicom_dir(path)
        return _open_sitk(path)


def _open_nibabel(path: Path) -> tuple[_Header, Loader]:
    img = nib.load(str(path), mmap=False)
    compressed = _magic(path, 0, 2) == b"\x1f\x8b"
    data_bytes = None if compressed else path.stat().st_size - int(img.dataobj.offset)
    header = _Header(tuple(int(s) for s in img.shape), img.get_data_dtype(), img.affine, data_bytes)

    def load(index: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        if header.n_volumes == 1:
            arr = np.asarray(img.dataobj).reshape(header.shape3)
        else:
            arr = np.asarray(img.dataobj[..., index])
        return arr.astype(np.float32, copy=False), header.affine

    return header, load


def _open_sitk(path: Path) -> tuple[_Header, Loader]:
    reader = _read_info(str(path))
    header = _sitk_header(reader)
    size = list(reader.GetSize())
    n_comp = reader.GetNumberOfComponents()

    def load(index: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        if len(size) == 4:
            reader.SetExtractIndex([0, 0, 0, index])
            reader.SetExtractSize(size[:3] + [0])
        reader.SetOutputPixelType(sitk.sitkVectorFloat32 if n_comp > 1 else sitk.sitkFloat32)
        img = reader.Execute()
        if n_comp > 1:
            img = sitk.VectorIndexSelectionCast(img, index, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(img).T.reshape(header.shape3), header.affine

    return header, load


def _open_dicom_dir(path: Path) -> tuple[_Header, Loader]:
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # no "No Series were found" on stderr
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    if not ids:
        raise InputError(f"{path}: no DICOM series found in this folder")
    if len(ids) > 1:
        raise InputError(
            f"{path}: folder holds {len(ids)} DICOM series; pass the folder of one series"
        )
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), ids[0]))
    first = _read_info(files[0])
    header = _sitk_header(first)
    if len(files) > 1 and header.raw_shape[2:] == (1,):
        # slice step from the first and last positions (ITK recomputes it when reading)
        step = np.subtract(_read_info(files[-1]).GetOrigin(), first.GetOrigin()) / (len(files) - 1)
        affine = header.affine.copy()
        affine[:3, 2] = step * [-1.0, -1.0, 1.0]
        header = _Header((*header.raw_shape[:2], len(files)), header.dtype, affine)

    def load(index: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        reader.SetOutputPixelType(sitk.sitkFloat32)
        img = reader.Execute()
        affine = _itk_affine(img.GetDirection(), img.GetSpacing(), img.GetOrigin())
        return sitk.GetArrayFromImage(img).T.reshape(header.shape3), affine

    return header, load


def _read_info(filename: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(filename)
    reader.ReadImageInformation()
    return reader


def _sitk_header(reader: sitk.ImageFileReader) -> _Header:
    size = tuple(int(s) for s in reader.GetSize())
    n_comp = reader.GetNumberOfComponents()
    raw_shape = size[:3] + (1,) * (3 - len(size)) + size[3:] + ((n_comp,) if n_comp > 1 else ())
    pixel = reader.GetPixelID()
    name = next((n for n in _DTYPES if pixel in _sitk_ids(n)), "float64")
    affine = _itk_affine(reader.GetDirection(), reader.GetSpacing(), reader.GetOrigin())
    return _Header(raw_shape, np.dtype(name), affine)


def _sitk_ids(dtype: str) -> tuple[int, ...]:
    """SimpleITK pixel ids of a numpy scalar type and of its vector form."""
    name = dtype.replace("uint", "UInt").replace("int", "Int").replace("float", "Float")
    return tuple(getattr(sitk, f"sitk{kind}{name}", -99) for kind in ("", "Vector"))


def _itk_affine(direction, spacing, origin) -> NDArray[np.float64]:
    """RAS voxel-to-world affine from ITK (LPS) direction, spacing and origin (any dimension)."""
    n = len(spacing)
    m = min(n, 3)
    lps = np.eye(4)
    lps[:m, :m] = np.asarray(direction, dtype=np.float64).reshape(n, n)[:m, :m] * spacing[:m]
    lps[:m, 3] = np.asarray(origin, dtype=np.float64)[:m]
    return _LPS_TO_RAS @ lps


# -- checks ---------------------------------------------------------------------------------------
@contextmanager
def _library_errors(path: Path, fmt: str) -> Iterator[None]:
    """Turn the exceptions of nibabel, gzip and SimpleITK into one-line :class:`InputError`."""
    try:
        yield
    except InputError:
        raise
    except (ImageFileError, EOFError, zlib.error, OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: {_explain(exc, path, fmt)}") from exc


def _explain(exc: Exception, path: Path, fmt: str) -> str:
    """The problem behind a library exception, in a few words on one line."""
    text = " ".join(str(exc).replace(str(path), "").split())
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)) or "not a gzip file" in text:
        return "corrupt or truncated gzip data"
    short = ("Expected", "buffer is too small", "cannot be read", "not read completely")
    if any(s in text for s in short):
        return "image data is missing or shorter than the header says (truncated file?)"
    if isinstance(exc, ImageFileError) or "Unable to determine ImageIO" in text:
        return f"not a readable image (not a valid {_FORMAT_NAMES.get(fmt, fmt)} file)"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read the file ({exc.strerror})"
    if "ERROR:" in text:  # ITK: keep the reason, drop source locations and object addresses
        text = text.rsplit("ERROR:", 1)[1].split(": ", 1)[-1]
    return f"not a readable image ({text[:160] or type(exc).__name__})"


def _axcodes(affine: NDArray) -> str:
    try:
        codes = nib.aff2axcodes(affine)
    except (ValueError, np.linalg.LinAlgError):
        return "???"
    return "".join(c or "?" for c in codes)


def _magic(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def _for_writing(data: NDArray, dtype: DTypeLike | None) -> NDArray:
    """Data cast to the on-disk type; floats written as integers are rounded and must fit."""
    arr = np.asarray(data)
    dtype = np.dtype(_default_dtype(arr) if dtype is None else dtype)
    if dtype.kind in "iu" and arr.dtype != dtype and arr.size:
        arr = np.rint(arr.astype(np.float64))
        lo, hi, info = arr.min(), arr.max(), np.iinfo(dtype)
        if not (np.isfinite(lo) and np.isfinite(hi) and info.min <= lo and hi <= info.max):
            raise ValueError(f"values {lo:g}..{hi:g} do not fit in {dtype.name}")
    return arr.astype(dtype, copy=False)


def _default_dtype(arr: NDArray) -> np.dtype:
    """The data's own type, except bool (uint8), float16 and 64-bit ints that fit int32."""
    if arr.dtype.kind == "b":
        return np.dtype(np.uint8)
    if arr.dtype == np.float16:
        return np.dtype(np.float32)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and arr.size:
        if -(2**31) <= arr.min() and arr.max() < 2**31:
            return np.dtype(np.int32)
    return arr.dtype
