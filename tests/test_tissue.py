"""Bone below the cranium: thin dark plates are bone; eyes, air and vault scalp are not."""

import numpy as np

from skullseg.tissue import extracranial_bone
from skullseg.volume import Volume


def _scene() -> tuple[Volume, dict[str, np.ndarray]]:
    shape = (80, 80, 80)
    img = np.full(shape, 100.0, np.float32)  # soft tissue
    i, j, k = np.indices(shape)
    parts = {
        "plate": (np.abs(k - 20) <= 1) & (np.abs(i - 25) < 12) & (np.abs(j - 40) < 12),
        "eye": (i - 55) ** 2 + (j - 40) ** 2 + (k - 25) ** 2 <= 10**2,
        "high_plate": (np.abs(k - 60) <= 1) & (np.abs(i - 40) < 12) & (np.abs(j - 40) < 12),
        "air": (i - 25) ** 2 + (j - 60) ** 2 + (k - 40) ** 2 <= 6**2,
    }
    img[parts["plate"] | parts["high_plate"]] = 10.0  # compact bone
    img[parts["eye"]] = 20.0  # vitreous: as dark as CSF
    img[parts["air"]] = 0.0
    return Volume(img, np.eye(4)), parts


def test_thin_plate_is_bone_but_eyes_air_and_vault_scalp_are_not() -> None:
    vol, parts = _scene()
    head = np.ones(vol.shape, bool)
    none = np.zeros(vol.shape, bool)
    bone = extracranial_bone(
        vol, head, none, none, parts["air"], tissue_floor=30.0, below_z_mm=45.0
    )
    assert bone[parts["plate"]].mean() > 0.95
    assert not bone[parts["eye"]].any()
    assert not bone[parts["high_plate"]].any()  # above the brain centre: scalp has no bone
    assert not bone[parts["air"]].any()
    assert bone.sum() < 1.2 * parts["plate"].sum()


def test_no_bone_next_to_the_brain_or_inside_the_cranium() -> None:
    vol, parts = _scene()
    head = np.ones(vol.shape, bool)
    none = np.zeros(vol.shape, bool)
    brain = np.zeros(vol.shape, bool)
    brain[10:42, 25:56, 22:30] = True  # lies on the plate
    bone = extracranial_bone(vol, head, none, brain, none, tissue_floor=30.0, below_z_mm=45.0)
    assert not bone[parts["plate"]].any()
    cranium = parts["plate"].copy()
    bone = extracranial_bone(vol, head, cranium, none, none, tissue_floor=30.0, below_z_mm=45.0)
    assert not bone.any()
