"""skullseg: the skull (and scalp, CSF, brain, air cavities) from a head MRI, on a CPU."""

from __future__ import annotations

__version__ = "0.1.0"

from .volume import Volume  # noqa: E402

__all__ = ["Volume", "__version__"]
