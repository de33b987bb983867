"""A self-contained HTML report of one run: summary, slice viewer and interactive 3D surfaces.

:func:`write_report_html` writes a single ``report.html`` that needs no network and no other
file: styles, scripts and data are inlined. The data (the image quantised to uint8, the label
volume, the meshes as 16-bit quantised vertices and uint32 faces) travel zlib-compressed and
base64 encoded in a JSON block, inflated in the browser with ``DecompressionStream('deflate')``.
A Content-Security-Policy meta tag forbids every network fetch besides.

The 3D view uses three.js (MIT; npm package ``three`` 0.180.0 with its OrbitControls, vendored
unmodified under ``skullseg/data/js`` by ``tools/vendor_js.sh``) rather than a hand-written
WebGL viewer: orbit/pan/zoom, lighting, transparency ordering and vertex colours come well
tested, for about 200 kB of compressed script per report. The ES modules are loaded from blob
URLs, with their imports rewritten to those blob URLs, so the page works from ``file://``.
Without WebGL 2 the page says so and the summary and slices still work.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import zlib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path

import nibabel.orientations as nio
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from . import labels as L
from .fileutil import atomic_write_bytes
from .mesh import Surface
from .report_summary import summary_html
from .volume import Volume

__all__ = ["write_report_html", "report_html_text"]

log = logging.getLogger("skullseg")

_JS = ("skullseg", "data/js")
_THREE_FILES = {"core": "three.core.min.js", "module": "three.module.min.js"}
_THREE_FILES["orbit"] = "OrbitControls.js"
#: mesh name -> (hex colour, opacity); other names use a label colour or grey.
_MESH_STYLE = {k: (L.LABELS[L.SKULL][1], 1.0) for k in ("skull", "outer_skull")}
_MESH_STYLE |= {k: (L.LABELS[L.SCALP][1], 0.2) for k in ("scalp", "skin", "outer_skin")}
_MESH_STYLE["inner_skull"] = ("#e0c9a6", 1.0)
_LABEL_WEIGHT = {L.SKULL: 1.0}  # overlay opacity relative to the slider; others 0.7


def write_report_html(
    path: str | Path,
    report: Mapping,
    image: Volume,
    labels: Volume,
    meshes: Mapping[str, Surface] | None = None,
    *,
    vertex_values: Mapping[str, NDArray] | None = None,
    values_label: str = "skull thickness (mm)",
    max_bytes: int = 15_000_000,
    max_dim: int = 192,
    max_faces: int = 100_000,
) -> Path:
    """Write one self-contained HTML report (summary, slices, 3D surfaces) to ``path``.

    Parameters
    ----------
    path : str or Path
        Output file, written atomically.
    report : mapping
        The run report (``report.json``'s content): ``input``, ``options``, ``timings_s``,
        ``volumes_ml``, ``skull_thickness_mm`` (optional), ``warnings``, ...; any other key
        is shown as a table too.
    image, labels : Volume
        The (bias-corrected) image and the label volume, on one grid (e.g.
        ``SegmentResult.image_work`` and ``labels_work``).
    meshes : mapping of str to Surface, optional
        Surfaces in world mm, e.g. ``{"skull": ..., "scalp": ...}``. ``skull``/``outer_skull``
        are drawn opaque in bone colour, ``scalp``/``skin`` semi-transparent.
    vertex_values : mapping of str to ndarray, optional
        Per-vertex values (one per vertex of ``meshes[name]``) drawn as a colour map with a
        colour bar, e.g. ``{"outer_skull": thickness_mm}``.
    values_label : str
        Caption of the colour bar.
    max_bytes : int
        Upper bound of the file size; the volume and meshes are downsampled further until
        the page fits.
    max_dim : int
        Largest number of voxels along any axis of the volume shown (cropped to the head first).
    max_faces : int
        Most triangles per mesh shown (quadric decimation beyond).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``image`` and ``labels`` are not on one grid, or the page cannot fit ``max_bytes``.
    """
    path = Path(path)
    opts = {"vertex_values": vertex_values, "values_label": values_label}
    while True:
        text = report_html_text(
            report, image, labels, meshes, **opts, max_dim=max_dim, max_faces=max_faces
        )
        raw = text.encode("utf-8")
        if len(raw) <= max_bytes:
            break
        if max_dim <= 32 and max_faces <= 2000:
            raise ValueError(f"report.html cannot fit {max_bytes} bytes ({len(raw)} at the least)")
        log.info("report.html is %.1f MB, downsampling further", len(raw) / 1e6)
        max_dim, max_faces = max(int(max_dim * 0.8), 32), max(int(max_faces * 0.6), 2000)
    return atomic_write_bytes(path, raw)


def report_html_text(
    report: Mapping,
    image: Volume,
    labels: Volume,
    meshes: Mapping[str, Surface] | None = None,
    *,
    vertex_values: Mapping[str, NDArray] | None = None,
    values_label: str = "skull thickness (mm)",
    max_dim: int = 192,
    max_faces: int = 100_000,
) -> str:
    """The page :func:`write_report_html` writes, as text (no size limit applied)."""
    if not image.same_grid(labels):
        raise ValueError("image and labels must be on one grid")
    meshes = dict(meshes or {})
    vertex_values = dict(vertex_values or {})
    shown = [np.asarray(v, float).ravel() for k, v in vertex_values.items() if k in meshes]
    vrange = _value_range(np.concatenate(shown)) if shown else (0.0, 1.0)
    payload = {
        "volume": _volume_payload(image, labels, max_dim),
        "meshes": [
            _mesh_payload(name, s, vertex_values.get(name), vrange, max_faces)
            for name, s in meshes.items()
            if len(s.faces)
        ],
        "libs": {k: _packed_js(f) for k, f in _THREE_FILES.items()},
    }
    vol = payload["volume"]
    name = Path(str((report.get("input") or {}).get("path") or "input")).name
    legend = [(n, c) for i, (n, c) in sorted(L.LABELS.items()) if i != L.BACKGROUND]
    parts = {
        "TITLE": html.escape(f"skullseg report: {name}"),
        "SUMMARY": summary_html(report, name),
        "LEGEND": "".join(
            f'<span><i class="swatch" style="background:{c}"></i>{html.escape(n)}</span>'
            for n, c in legend
        ),
        "SLICE_NOTE": f"Shown at {vol['spacing'][0]:.2g} mm "
        f"({' x '.join(map(str, vol['shape']))} voxels).",
        "COLORBAR": _colorbar_html(vrange, values_label) if shown else "",
        "FOOTER": _footer_html(report),
        "DATA": json.dumps(payload, separators=(",", ":")).replace("</", "<\\/"),
        "APP": _js_bytes("report_app.js").decode("utf-8"),
    }
    template = _js_bytes("report_template.html").decode("utf-8")
    return re.sub(r"@@([A-Z_]+)@@", lambda m: parts[m.group(1)], template)  # one pass


# -- data ---------------------------------------------------------------------------------
@cache
def _js_bytes(name: str) -> bytes:
    return (resources.files(_JS[0]) / _JS[1] / name).read_bytes()


@cache
def _packed_js(name: str) -> dict:
    return _packed(_js_bytes(name))


def _packed(raw: bytes) -> dict:
    """zlib-compress and base64-encode bytes for the page."""
    return {"b64": base64.b64encode(zlib.compress(raw, 6)).decode("ascii"), "zlib": True}


def _volume_payload(image: Volume, labels: Volume, max_dim: int) -> dict:
    """Image (uint8) and labels (uint8) on a RAS-ordered, head-cropped, isotropic grid."""
    ornt = nio.io_orientation(image.affine)
    img = nio.apply_orientation(np.nan_to_num(np.asarray(image.data, dtype=np.float32)), ornt)
    lab = nio.apply_orientation(np.asarray(labels.data), ornt).astype(np.uint8)
    zooms = np.empty(3)
    zooms[ornt[:, 0].astype(int)] = image.zooms_mm
    if lab.any():  # crop to the labelled head plus a 5 mm margin
        nz = [np.nonzero(lab.any(axis=tuple(a for a in range(3) if a != d)))[0] for d in range(3)]
        pad = np.ceil(5.0 / zooms).astype(int)
        lo = [max(int(n[0]) - p, 0) for n, p in zip(nz, pad)]
        hi = [min(int(n[-1]) + 1 + p, s) for n, p, s in zip(nz, pad, lab.shape)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        img, lab = img[box], lab[box]
    extent = np.array(lab.shape) * zooms
    step = max(float(zooms.min()), float(extent.max()) / max_dim)
    factors = zooms / step
    if np.any(np.abs(factors - 1) > 1e-3):
        sigma = np.maximum((1 / factors - 1) / 2, 0)
        if np.any(sigma > 0):
            img = ndimage.gaussian_filter(img, sigma)
        img = ndimage.zoom(img, factors, order=1, mode="nearest", grid_mode=True)
        lab = ndimage.zoom(lab, factors, order=0, mode="nearest", grid_mode=True)
    head = img[lab > 0] if lab.any() else img.ravel()
    lo_v, hi_v = float(np.percentile(img, 0.5)), float(np.percentile(head, 99.5))
    grey = np.clip((img - lo_v) * (255.0 / max(hi_v - lo_v, 1e-6)), 0, 255)
    grey = np.ascontiguousarray(np.round(grey).astype(np.uint8))
    centre = np.argwhere(lab == L.BRAIN).mean(0) if np.any(lab == L.BRAIN) else None
    start = np.round(centre if centre is not None else (np.array(lab.shape) - 1) / 2)
    table = {
        str(i): {"color": c, "weight": _LABEL_WEIGHT.get(i, 0.7)}
        for i, (_, c) in L.LABELS.items()
        if i != L.BACKGROUND
    }
    return {
        "shape": [int(s) for s in lab.shape],
        "spacing": [round(step, 4)] * 3,
        "start": [int(s) for s in start],
        "image": _packed(grey.tobytes()),
        "labels": _packed(np.ascontiguousarray(lab).tobytes()),
        "label_table": table,
    }


def _decimated(surface: Surface, max_faces: int) -> tuple[NDArray, NDArray, NDArray | None]:
    """Vertices, faces and (when decimated) the nearest original vertex of each new one."""
    v, f = surface.vertices, surface.faces
    if len(f) <= max_faces:
        return v, f, None
    import fast_simplification
    from scipy.spatial import cKDTree

    v2, f2 = fast_simplification.simplify(
        v.astype(np.float32), f.astype(np.int32), target_reduction=1 - max_faces / len(f)
    )
    return v2, f2, cKDTree(v).query(v2)[1]


def _mesh_payload(
    name: str, surface: Surface, values: NDArray | None, vrange: tuple[float, float], max_faces: int
) -> dict:
    colour, opacity = _MESH_STYLE.get(name, (_label_colour(name), 1.0))
    v, f, nearest = _decimated(surface, max_faces if opacity >= 1 else max_faces // 2)
    lo = v.min(0)  # vertices quantised to 16 bits over the bounding box (< 0.01 mm steps)
    scale = np.maximum(v.max(0) - lo, 1e-6) / 65535
    q = np.round((v - lo) / scale)
    out = {
        "name": name,
        "color": colour,
        "opacity": opacity,
        "visible": True,
        "n_faces": int(len(f)),
        "vertices": _packed(q.astype("<u2").tobytes()),
        "offset": [float(x) for x in lo],
        "scale": [float(x) for x in scale],
        "faces": _packed(np.ascontiguousarray(f, dtype="<u4").tobytes()),
        "values": None,
    }
    if values is not None:
        values = np.asarray(values, dtype=np.float64).ravel()
        if len(values) != len(surface.vertices):
            raise ValueError(f"vertex_values[{name!r}] has {len(values)} values, not one a vertex")
        values = values if nearest is None else values[nearest]
        out["values"] = _packed(_colours(values, *vrange).tobytes())
    return out


def _label_colour(name: str) -> str:
    return next((c for n, c in L.LABELS.values() if n == name), "#b0b0b0")


def _value_range(values: NDArray) -> tuple[float, float]:
    ok = values[np.isfinite(values)]
    if not ok.size:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(ok, [2, 98]))
    return lo, max(hi, lo + 1e-6)


def _colours(values: NDArray, lo: float, hi: float) -> NDArray[np.uint8]:
    """Viridis RGB (uint8, (N, 3)) of ``values`` over ``lo..hi``; grey where not finite."""
    from matplotlib import colormaps

    t = np.clip((np.nan_to_num(values, nan=lo) - lo) / (hi - lo), 0, 1)
    rgb = np.round(colormaps["viridis"](t)[:, :3] * 255).astype(np.uint8)
    rgb[~np.isfinite(values)] = 128
    return np.ascontiguousarray(rgb)


def _colorbar_html(vrange: tuple[float, float], label: str) -> str:
    lo, hi = vrange
    stops = _colours(np.linspace(lo, hi, 9), lo, hi)
    ramp = ",".join(f"rgb({r},{g},{b})" for r, g, b in stops)
    return (
        f'<span class="colorbar"><span>{html.escape(label)}</span><span>{lo:.1f}</span>'
        f'<span class="ramp" style="background:linear-gradient(to right,{ramp})"></span>'
        f"<span>{hi:.1f}</span></span>"
    )


def _footer_html(report: Mapping) -> str:
    notice = _js_bytes("THREE_LICENSE.txt").decode("utf-8")
    return (
        f"Written by skullseg {html.escape(str(report.get('skullseg_version', '')))}. "
        "The 3D view uses three.js, inlined under its MIT licence:"
        f"<details><summary>three.js licence</summary><pre>{html.escape(notice)}</pre></details>"
    )
