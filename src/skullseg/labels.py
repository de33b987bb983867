"""Label values of the output contract (``labels.nii.gz``) and their lookup table.

These values are read by other tools: never renumber, only add.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BACKGROUND",
    "SCALP",
    "SKULL",
    "CSF",
    "BRAIN",
    "AIR_CAVITY",
    "LABELS",
    "labels_tsv_text",
    "write_labels_tsv",
]

BACKGROUND = 0
SCALP = 1
SKULL = 2
CSF = 3
BRAIN = 4
AIR_CAVITY = 5

#: index -> (name, hex colour); BIDS "dseg" look-up-table style.
LABELS: dict[int, tuple[str, str]] = {
    BACKGROUND: ("background", "#000000"),
    SCALP: ("scalp", "#d9a680"),
    SKULL: ("skull", "#f2f2e6"),
    CSF: ("csf", "#4da6ff"),
    BRAIN: ("brain", "#cc6677"),
    AIR_CAVITY: ("air_cavity", "#40c040"),
}


def labels_tsv_text() -> str:
    """The ``labels.tsv`` look-up table as text (columns index, name, color)."""
    rows = ["index\tname\tcolor"]
    rows += [f"{i}\t{name}\t{colour}" for i, (name, colour) in sorted(LABELS.items())]
    return "\n".join(rows) + "\n"


def write_labels_tsv(path: str | Path) -> Path:
    """Write the look-up table to ``path`` and return it."""
    path = Path(path)
    path.write_text(labels_tsv_text())
    return path
