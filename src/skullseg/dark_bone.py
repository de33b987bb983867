"""Dark bone that a T1 cannot tell from air, taken from the registered atlas.

Compact bone and air are both nearly signal-free in a T1. Where a bone has little bright
marrow (a sclerotic or fatty-marrow-poor skull base, the walls of the maxillary sinuses, a
dark mandible or vertebra), the air-cavity rule (:func:`skullseg.tissue.air_cavities`)
takes the bone beside a sinus, or a whole thick dark bone, for air. The registered atlas
knows where bone usually is and where air is. Air-labelled voxels where the deformed
atlas's skull prior is its majority class (above ``min_skull`` = 0.5) and where the affine
fit's air prior (the one that gates air in the bone band) is low (below ``max_air``) are
relabelled bone.

Measured (BENCHMARKS.md, session 26; in-process, labels before the rule against the
reference): on the simulated head whose marrow is as dark as compact bone (``nomarrow``
variant), 72.9 mL of reference bone was labelled air; 31.0 mL of it lies outside the atlas's
field (the neck) and 25.0 mL where the skull prior is above 0.5. The rule relabels 19.6 mL
there, 18.7 mL of it reference bone. On the default simulated head (bright marrow) it
relabels 2.4 mL, 1.1 mL of it bone and 1.3 mL air. The air prior's level:
below 0.5, 2.4 mL of the 25.3 mL relabelled on the ``nomarrow`` head was air, and 2.7 of
4.7 mL on the default head; below 0.2, 0.4 of 16.1 and 0.8 of 1.5 mL. The deformed fit's air
prior below 0.3 relabels 23.4 mL (2.1 air) and 4.0 mL (2.4 air).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from skullseg.labels import AIR_CAVITY
from skullseg.volume import Volume

__all__ = ["dark_bone_from_atlas"]


def dark_bone_from_atlas(
    labels: Volume,
    skull_prior: Volume,
    air_prior: Volume,
    *,
    min_skull: float = 0.5,
    max_air: float = 0.3,
) -> NDArray[np.bool_]:
    """Air-labelled voxels that the atlas says are bone (to be relabelled skull).

    Parameters
    ----------
    labels : Volume
        Label map (:mod:`skullseg.labels` values).
    skull_prior : Volume
        The registered atlas's skull prior on the same grid (the deformable fit's, as
        for :func:`skullseg.cisterns.cisterns_from_atlas`).
    air_prior : Volume
        The atlas's air prior on the same grid, from its affine fit (the one that gates air
        in the bone band, :func:`skullseg.tissue.sinus_region`).
    min_skull : float
        The skull prior must exceed this (0.5: bone is the atlas's majority class) ...
    max_air : float
        ... and the air prior must be below this.

    Returns
    -------
    ndarray of bool
        The voxels to relabel, on ``labels``' grid.

    Examples
    --------
    >>> lab = np.full((4, 4, 4), AIR_CAVITY, np.uint8)
    >>> skull = np.zeros(lab.shape, np.float32); skull[:2] = 0.8
    >>> air = np.zeros(lab.shape, np.float32); air[:, :2] = 0.9
    >>> v = Volume(lab, np.eye(4))
    >>> int(dark_bone_from_atlas(v, v.with_data(skull), v.with_data(air)).sum())
    16
    """
    air = labels.data == AIR_CAVITY
    return air & (skull_prior.data > min_skull) & (air_prior.data < max_air)
