"""Quality control: a picture to judge the result at a glance, and label volumes.

``qc.png`` shows three orthogonal planes through the head (and three more
through the skull's vault and base), the input in grey with the labels as
coloured outlines and a translucent fill, in world orientation (RAS: the
subject's right on the left of axial and coronal views, radiological style,
which the caption states).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from . import labels as L
from .fileutil import atomic_path
from .volume import Volume

__all__ = ["label_volumes_ml", "write_qc_png"]


def label_volumes_ml(labels: Volume) -> dict[str, float]:
    """Volume in mL of every contract label (0 for absent ones), background excluded."""
    counts = np.bincount(labels.data.ravel().astype(np.int64), minlength=max(L.LABELS) + 1)
    return {
        name: round(float(counts[i]) * labels.voxel_volume_ml, 2)
        for i, (name, _) in sorted(L.LABELS.items())
        if i != L.BACKGROUND
    }


def _colour_table() -> NDArray[np.float64]:
    table = np.zeros((max(L.LABELS) + 1, 4))
    for i, (_, hexcol) in L.LABELS.items():
        rgb = [int(hexcol[k : k + 2], 16) / 255 for k in (1, 3, 5)]
        table[i] = [*rgb, 0.0 if i == L.BACKGROUND else 0.35]
    table[L.SKULL, 3] = 0.55
    return table


def skull_base_slice(labels: NDArray, slice_mm: float, *, drop: float = 0.4) -> int | None:
    """Axial index through the skull base: 10 mm above where the cranial cavity narrows.

    Going down from its widest slice, the intracranial space (CSF and brain labels of a
    RAS-aligned ``labels`` grid) narrows to the foramen magnum; the first slice under
    ``drop`` x its widest cross-section is the floor of the posterior fossa, and 10 mm
    above it the slice crosses the petrous bones, the cerebellum and the temporal lobes.
    None when the cavity does not narrow within the field of view (a cut scan). The
    lowest skull voxel is no guide: with the mandible and spine labelled it is the chin.

    Examples
    --------
    >>> lab = np.zeros((5, 5, 40), np.uint8)
    >>> lab[0:5, 1:4, 20:] = 4; lab[:, :, 30:36] = 4  # a cavity, widest at 30-35
    >>> lab[2, 2, :20] = 4  # above a one-voxel "spinal cord"
    >>> skull_base_slice(lab, 1.0)
    29
    """
    area = np.isin(labels, (L.CSF, L.BRAIN)).sum(axis=(0, 1))
    if not area.any():
        return None
    widest = int(np.argmax(area))
    narrow = np.nonzero(area[:widest] < drop * area[widest])[0]
    if not narrow.size:
        return None
    return int(min(narrow.max() + round(10 / slice_mm), widest))


def write_qc_png(image: Volume, labels: Volume, path: str | Path, *, title: str = "") -> Path:
    """Write orthogonal slices of ``image`` with ``labels`` overlaid (same grid, RAS-aligned).

    Both volumes must be on the same RAS-aligned grid (the working grid).
    The file is written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = image.data.astype(np.float32)
    lab = labels.data
    hi = float(np.percentile(img[lab > 0], 99)) if np.any(lab > 0) else float(img.max())
    skull = lab == L.SKULL
    centre = (
        np.array(np.nonzero(lab == L.BRAIN)).mean(axis=1)
        if np.any(lab == L.BRAIN)
        else (np.array(img.shape) - 1) / 2
    )
    c = np.round(centre).astype(int)
    zs = np.nonzero(skull.any(axis=(0, 1)))[0]
    z_vault = int(zs.max() - 25 / image.zooms_mm[2]) if zs.size else c[2]
    z_base = skull_base_slice(lab, image.zooms_mm[2])
    if z_base is None:
        z_base = int(max(zs.min() + 15 / image.zooms_mm[2], 0)) if zs.size else c[2]
    views = [
        ("axial", 2, c[2]),
        ("coronal", 1, c[1]),
        ("sagittal", 0, c[0]),
        ("axial (vault)", 2, z_vault),
        ("axial (skull base)", 2, z_base),
        ("coronal (posterior)", 1, int(c[1] - 40 / image.zooms_mm[1])),
    ]
    colours = _colour_table()
    fig, axes = plt.subplots(2, 3, figsize=(15, 10.5), facecolor="black")
    for ax, (name, axis, index) in zip(axes.ravel(), views):
        index = int(np.clip(index, 0, img.shape[axis] - 1))
        sl = [slice(None)] * 3
        sl[axis] = index
        im2 = img[tuple(sl)].T
        lb2 = lab[tuple(sl)].T
        ax.imshow(im2, cmap="gray", origin="lower", vmin=0, vmax=hi, interpolation="nearest")
        ax.imshow(colours[lb2], origin="lower", interpolation="nearest")
        for value in (L.SKULL, L.BRAIN):
            if np.any(lb2 == value):
                ax.contour(lb2 == value, levels=[0.5], colors=[colours[value][:3]], linewidths=0.8)
        if axis != 0:
            ax.invert_xaxis()  # radiological: subject's right on the viewer's left
        ax.set_title(f"{name} {index}", color="white", fontsize=10)
        ax.set_axis_off()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i][:3]) for i in sorted(L.LABELS) if i]
    fig.legend(
        handles,
        [L.LABELS[i][0] for i in sorted(L.LABELS) if i],
        loc="lower center",
        ncol=5,
        facecolor="black",
        labelcolor="white",
        frameon=False,
    )
    fig.suptitle(f"{title}  (radiological view: subject's right on the left)", color="white")
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=80, facecolor="black")
    finally:
        plt.close(fig)
    return path
