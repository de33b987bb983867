"""Bone below the cranium: thin dark plates are bone; eyes, air and vault scalp are not."""

import numpy as np
from scipy import ndimage as ndi

from skullseg import labels as L
from skullseg.morphology import distance_inside_mm
from skullseg.tissue import (
    enclosed_marrow,
    extracranial_bone,
    fluid_in_bone,
    marrow_pieces,
    spinal_cord,
)
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


def _spine_scene() -> tuple[Volume, dict[str, np.ndarray]]:
    """A brain above a spinal canal (cord in a dark ring) and a vertebral body beside it
    (bright marrow in a thin dark cortex), in soft tissue."""
    shape = (70, 70, 90)
    img = np.full(shape, 100.0, np.float32)
    i, j, k = np.indices(shape)
    r_canal = np.hypot(i - 35, j - 30)
    r_body = np.hypot(i - 35, j - 50)
    parts = {
        "brain": ((i - 35) ** 2 + (j - 30) ** 2 + (k - 80) ** 2 <= 12**2) & (k >= 70),
        "cord": (r_canal <= 4) & (k < 68),
        "csf": (r_canal > 4) & (r_canal <= 6.5) & (k < 68),
        "canal_wall": (r_canal > 6.5) & (r_canal <= 8.5) & (k < 68),
        "cortex": (r_body > 6) & (r_body <= 8) & (k >= 20) & (k < 50),
        "marrow": (r_body <= 6) & (k >= 20) & (k < 50),
    }
    parts["cortex"] |= (r_body <= 8) & ((k == 19) | (k == 50))  # end plates
    img[parts["brain"] | parts["cord"]] = 110.0
    img[parts["csf"]] = 25.0
    img[parts["canal_wall"] | parts["cortex"]] = 10.0
    img[parts["marrow"]] = 120.0  # fatty marrow: bright in a T1
    return Volume(img, np.eye(4)), parts


def test_marrow_enclosed_by_cortex_is_bone_but_the_spinal_canal_is_not() -> None:
    vol, parts = _spine_scene()
    head = np.ones(vol.shape, bool)
    none = np.zeros(vol.shape, bool)
    cord, canal = spinal_cord(vol, head, parts["brain"], dark_threshold=45.0)
    assert cord[parts["cord"]].mean() > 0.9 and not cord[parts["marrow"]].any()
    assert canal[parts["csf"]].mean() > 0.9 and not canal[parts["cortex"]].any()
    bone = extracranial_bone(
        vol, head, none, parts["brain"], none, tissue_floor=30.0, below_z_mm=60.0, canal=canal
    )
    assert bone[parts["marrow"]].mean() > 0.9  # filled
    assert bone[parts["cortex"]].mean() > 0.9
    assert not bone[parts["cord"]].any()  # the cord is not marrow
    assert bone[parts["csf"]].mean() < 0.1  # nor is the CSF around it
    without = extracranial_bone(
        vol,
        head,
        none,
        parts["brain"],
        none,
        tissue_floor=30.0,
        below_z_mm=60.0,
        max_marrow_ml=0.0,
        canal=canal,
    )
    assert without[parts["marrow"]].mean() < 0.1


def _wide_canal(cord_r: float) -> tuple[Volume, dict[str, np.ndarray]]:
    """A cord in a canal of CSF 7 mm wide, a thin dark plate (a lamina) leaving it."""
    shape = (80, 80, 70)
    img = np.full(shape, 100.0, np.float32)
    i, j, k = np.indices(shape)
    r = np.hypot(i - 40, j - 40)
    below = k < 50
    parts = {
        "brain": ((i - 40) ** 2 + (j - 40) ** 2 + (k - 60) ** 2 <= 14**2) & (k >= 52),
        "cord": (r <= cord_r) & below,
        "csf": (r > cord_r) & (r <= cord_r + 7) & below,
        "plate": (r > cord_r + 9) & (r <= cord_r + 25) & (abs(j - 40) <= 1) & (i > 40) & below,
    }
    parts["plate_root"] = (r > cord_r + 7) & (r <= cord_r + 9) & (abs(j - 40) <= 1) & (i > 40)
    img[parts["brain"] | parts["cord"]] = 110.0
    img[parts["csf"] | parts["plate"] | (parts["plate_root"] & below)] = 15.0
    return Volume(img, np.eye(4)), parts


def test_the_canal_is_all_the_dark_around_the_cord_but_not_a_thin_plate() -> None:
    vol, parts = _wide_canal(4.0)
    head = np.ones(vol.shape, bool)
    cord, canal = spinal_cord(vol, head, parts["brain"], dark_threshold=45.0)
    assert cord[parts["cord"]].mean() > 0.9
    core = parts["csf"] & (np.indices(vol.shape)[2] < 45)  # away from the brain's slab
    assert canal[core].mean() > 0.95  # the whole 7 mm, not only the 3 mm ring
    assert not canal[parts["plate"]].any()  # a 3 mm plate does not join the canal
    ring_only = spinal_cord(vol, head, parts["brain"], dark_threshold=45.0, reach_mm=0.0)[1]
    assert ring_only[core].mean() < 0.6


def test_a_region_wider_than_a_cord_keeps_the_narrow_ring() -> None:
    # the pons of a field of view cut at the brainstem: 250 mm2, more than any cord
    vol, parts = _wide_canal(9.0)
    head = np.ones(vol.shape, bool)
    cord, canal = spinal_cord(vol, head, parts["brain"], dark_threshold=45.0)
    assert cord[parts["cord"]].mean() > 0.9
    i, j, _ = np.indices(vol.shape)
    beyond_ring = parts["csf"] & (np.hypot(i - 40, j - 40) > 9.0 + 4.0)
    assert not canal[beyond_ring].any()


def test_air_cavity_leaves_its_wall_to_bone() -> None:
    from skullseg.tissue import air_cavities

    img = np.full((40, 40, 40), 100.0, np.float32)
    img[10:30, 10:30, 10:30] = 0.0  # a dark cavity: air inside, a bony wall at its rim
    vol = Volume(img, np.eye(4))
    head = np.ones(img.shape, bool)
    none = np.zeros(img.shape, bool)
    air = air_cavities(vol, head, none, air_threshold=15.0)
    assert air[14:26, 14:26, 14:26].all()  # the middle is air
    assert not air[10, 10:30, 10:30].any()  # the outermost millimetre is not
    thick = air_cavities(vol, head, none, air_threshold=15.0, wall_mm=0.0)
    assert thick.sum() > air.sum()


def test_air_in_the_bone_band_only_where_the_atlas_expects_a_sinus() -> None:
    """Two equally dark, thick pockets in the cranial bone: a sinus (the atlas's air prior
    is high there, low in the skull base) and a thick table (prior zero, or above the
    skull base). Only the first is air; beyond the outer skull air is found anyway."""
    from skullseg.tissue import air_cavities, sinus_region

    img = np.full((60, 40, 60), 100.0, np.float32)
    pockets = {"sinus": np.s_[5:17, 10:22, 5:17], "table": np.s_[25:37, 10:22, 5:17]}
    pockets["high"] = np.s_[5:17, 10:22, 40:52]  # in the prior, but above the skull base
    pockets["outside"] = np.s_[45:57, 10:22, 40:52]  # beyond the outer skull
    prior = np.zeros(img.shape, np.float32)
    for name in ("sinus", "high", "outside"):
        img[pockets[name]] = 0.0
        grown = tuple(slice(max(sl.start - 4, 0), sl.stop + 4) for sl in pockets[name])
        prior[grown] = 0.9  # an atlas prior is blurred: it reaches beyond the cavity
    img[pockets["table"]] = 0.0
    vol = Volume(img, np.eye(4))
    outer = np.zeros(img.shape, bool)
    outer[:40] = True
    inner = np.zeros(img.shape, bool)
    sinus = sinus_region(vol, vol.with_data(prior), below_z_mm=30.0)
    head = np.ones(img.shape, bool)
    air = air_cavities(vol, head, inner | (outer & ~sinus), air_threshold=15.0)
    found = {name: air[sl].mean() for name, sl in pockets.items()}
    assert found["sinus"] > 0.2 and found["outside"] > 0.2  # the rim is left to the wall
    assert found["table"] == 0.0 and found["high"] == 0.0
    assert not sinus_region(vol, None, below_z_mm=30.0).any()  # no atlas: no air in the band


def test_the_canal_is_not_skull_where_the_cranium_crosses_it() -> None:
    from skullseg import labels as L
    from skullseg.tissue import assemble_labels

    z = np.zeros((20, 20, 20), bool)
    head, inner, outer, canal = z | True, z.copy(), z.copy(), z.copy()
    outer[2:18, 2:18, 2:18] = True
    inner[5:15, 5:15, 5:15] = True
    canal[8:12, 8:12, :8] = True  # crosses the floor of the cranium
    lab = assemble_labels(head, inner, inner, outer, canal=canal)
    assert not (lab[canal] == L.SKULL).any()
    assert (lab[canal & outer & ~inner] == L.CSF).all()  # the cord too: brain stays enclosed


def test_fluid_in_bone_is_csf_dark_in_t1_bright_in_t2_and_connected() -> None:
    """A cistern in the bone band becomes CSF; compact bone, marrow and a detached
    fluid pocket (an eye, sinus fluid) stay as they are."""
    shape = (40, 40, 40)
    i, j, k = np.indices(shape)
    inside = k < 10  # intracranial CSF
    band = (k >= 10) & (k < 20)  # the bone band
    cistern = band & (k < 14) & (np.abs(i - 10) < 5) & (np.abs(j - 20) < 5)
    marrow = band & (k >= 15) & (k < 18) & (np.abs(i - 30) < 5)
    pocket = band & (k >= 16) & (k < 19) & (np.abs(i - 10) < 3) & (np.abs(j - 20) < 3)
    t1 = np.full(shape, 10.0, np.float32)  # dark: CSF and compact bone alike
    t1[marrow] = 90.0
    t2 = np.full(shape, 5.0, np.float32)  # compact bone
    t2[inside | cistern | pocket] = 100.0
    t2[marrow] = 80.0  # marrow is bright in a T2 too, but not dark in the T1
    fluid = fluid_in_bone(
        Volume(t1, np.eye(4)),
        Volume(t2, np.eye(4)),
        band,
        inside,
        np.zeros(shape, bool),
        dark_threshold=45.0,
        sigma_mm=0.0,
    )
    assert np.array_equal(fluid, cistern)


def test_fluid_in_bone_needs_a_t2_that_shows_bright_csf() -> None:
    """A second image where CSF is not bright (or covers too little) finds no fluid."""
    shape = (30, 30, 30)
    k = np.indices(shape)[2]
    inside, band = k < 10, (k >= 10) & (k < 20)
    t1 = Volume(np.full(shape, 10.0, np.float32), np.eye(4))
    flat = Volume(np.full(shape, 100.0, np.float32), np.eye(4))  # CSF as bright as bone
    kw = dict(dark_threshold=45.0, sigma_mm=0.0)
    assert not fluid_in_bone(t1, flat, band, inside, np.zeros(shape, bool), **kw).any()
    slab = np.zeros(shape, np.float32)
    slab[:, :, 9:11] = 1000.0  # a T2 that covers two slices only: its zeros are not tissue
    out = fluid_in_bone(t1, Volume(slab, np.eye(4)), band, inside, np.zeros(shape, bool), **kw)
    assert out.sum() == 30 * 30  # the covered slice of the band, no more


def test_marrow_of_bone_shape_is_filled_but_not_a_wide_enclosure() -> None:
    # bars of fatty marrow in a dark cortical shell: as much as a mandible joined at the
    # chin (25 mL), a thick-boned one (77 mL, 12 mm deep: what a 1.5 mm thicker skull
    # makes of the simulated head's face), and an enclosure as wide as an oral cavity
    # (48 mm across, 92 mL)
    img = np.full((170, 60, 90), 100.0, np.float32)
    small = np.zeros(img.shape, bool)
    thick = np.zeros(img.shape, bool)
    wide = np.zeros(img.shape, bool)
    small[5:35, 14:26, 10:80] = True  # 30 x 12 x 70 mm = 25.2 mL
    thick[45:90, 10:34, 10:81] = True  # 45 x 24 x 71 mm = 76.7 mL, 12 mm deep
    wide[100:148, 5:53, 10:50] = True  # 48 x 48 x 40 mm = 92.2 mL, 24 mm deep
    for marrow in (small, thick, wide):
        shell = ndi.binary_dilation(marrow, iterations=2) & ~marrow
        img[shell] = 10.0
        img[marrow] = 120.0
    vol = Volume(img, np.eye(4))
    head = np.ones(img.shape, bool)
    none = np.zeros(img.shape, bool)
    bone = extracranial_bone(
        vol, head, none, none, none, tissue_floor=30.0, below_z_mm=100.0, skin_margin_mm=1.0
    )
    assert bone[small].mean() > 0.95
    assert bone[thick].mean() > 0.95
    assert bone[wide].mean() < 0.1


def test_muscle_beside_fat_is_not_bone_when_fat_is_left_out_of_the_tissue_level() -> None:
    """Scalp of bright fat (105) with a 4 mm band of muscle (45) in it, and a thin plate of
    compact bone (10). Beside that much fat, half the local mean is above the muscle's
    level, so the muscle was bone; with fat (above 90) left out of the level it is not, and
    the plate stays bone."""
    shape = (60, 60, 60)
    img = np.full(shape, 105.0, np.float32)  # fat (white matter would be 100)
    i, j, k = np.indices(shape)
    muscle = (np.abs(j - 30) < 2) & (np.abs(i - 30) < 15) & (np.abs(k - 20) < 10)
    plate = (np.abs(k - 45) <= 1) & (np.abs(i - 30) < 12) & (np.abs(j - 30) < 12)
    img[muscle] = 45.0
    img[plate] = 10.0
    vol = Volume(img, np.eye(4))
    head = np.ones(shape, bool)
    none = np.zeros(shape, bool)
    kw = dict(tissue_floor=30.0, below_z_mm=55.0)
    before = extracranial_bone(vol, head, none, none, none, **kw)
    after = extracranial_bone(vol, head, none, none, none, tissue_ceiling=90.0, **kw)
    assert before[muscle].mean() > 0.9
    assert not after[muscle].any()
    assert after[plate].mean() > 0.95
    # amid fat alone (no tissue below the ceiling within reach) the plate is still bone
    img[muscle] = 105.0
    alone = extracranial_bone(vol, head, none, none, none, tissue_ceiling=90.0, **kw)
    assert alone[plate].mean() > 0.95


def test_marrow_that_bone_encloses_on_every_side_is_bone_but_open_tissue_and_air_are_not() -> None:
    # a thick bone whose marrow the layered model labelled scalp (enclosed: bone), a second
    # one with a channel to the scalp outside (open: left alone), a sinus (air, enclosed:
    # left alone) and a wide enclosure (36 mm across, 18 mm deep: not marrow)
    lab = np.full((100, 40, 40), L.SCALP, np.uint8)
    lab[:, :, 35:] = L.BACKGROUND
    pockets = {
        "marrow": (slice(5, 20), slice(10, 30), slice(10, 20)),
        "open": (slice(30, 45), slice(10, 30), slice(10, 20)),
        "air": (slice(55, 65), slice(10, 30), slice(10, 20)),
        "wide": (slice(60, 98), slice(2, 38), slice(4, 34)),
    }
    for box in pockets.values():
        outer = tuple(slice(b.start - 2, b.stop + 2) for b in box)
        lab[outer] = L.SKULL
        lab[box] = L.SCALP
    lab[pockets["air"]] = L.AIR_CAVITY
    lab[35:40, 18:22, 20:35] = L.SCALP  # the channel from "open" to the scalp
    found = enclosed_marrow(lab, (1.0, 1.0, 1.0))
    assert found[pockets["marrow"]].all()
    assert not found[pockets["open"]].any()
    assert not found[pockets["air"]].any()
    assert not found[pockets["wide"]].any()
    assert not found[lab != L.SCALP].any()


def test_marrow_pieces_in_their_box_are_those_of_the_whole_grid() -> None:
    # the reference: depth of every axial slice over the whole grid (pieces touching the
    # grid's border included), then the same size and depth limits
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = ndi.binary_opening(rng.random((40, 36, 12)) > 0.45)
        lab, n = ndi.label(m)
        depth = np.stack(
            [distance_inside_mm(m[:, :, k][..., None], (1.0, 1.0, 1e6))[..., 0] for k in range(12)],
            axis=2,
        )
        deep = np.asarray(ndi.maximum(depth, lab, np.arange(1, n + 1)))
        size = np.bincount(lab.ravel(), minlength=n + 1)[1:] / 1000.0
        keep = np.r_[False, (deep <= 1.5) & (size <= 0.02)]
        assert 0 < keep.sum() < n  # some pieces kept, some not
        found = marrow_pieces(m, (1.0, 1.0, 1.0), max_ml=0.02, max_depth_mm=1.5)
        assert np.array_equal(found, keep[lab])
