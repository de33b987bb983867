"""End-to-end behaviour of :func:`skullseg.pipeline.segment` on synthetic heads."""

from __future__ import annotations

import numpy as np
import pytest

from skullseg import labels as L
from skullseg.evaluate import evaluate
from skullseg.phantom import make_phantom, reorient
from skullseg.pipeline import segment


def test_skull_dice_on_phantom(phantom_10):
    """Accuracy pin: skull Dice >= 0.93 on the 1 mm synthetic head (measured 0.952 since the
    atlas's CSF needs an atlas that fits the head, session 25; 0.943 before)."""
    res = evaluate(
        segment(phantom_10.t1).labels, phantom_10.labels, pred_label=L.SKULL, truth_label=L.SKULL
    )
    assert res["dice"] >= 0.93, res


def test_skull_dice_on_coarse_phantom(phantom_15, segmented_15):
    """At 1.5 mm the voxel grid itself limits the overlap (measured 0.921 since session 25;
    0.915 before)."""
    res = evaluate(segmented_15.labels, phantom_15.labels, pred_label=L.SKULL, truth_label=L.SKULL)
    assert res["dice"] >= 0.90, res


def test_skull_dice_on_thick_slice_phantom():
    """4 mm slices with their partial volume (1.5 x 1.5 x 4 mm): skull Dice >= 0.88 on the
    phantom's own grid (measured 0.898 since the atlas's cisterns need an atlas that fits,
    session 25; 0.893 before; 0.887 without the thick-slice edge rules)."""
    ph = make_phantom((1.5, 1.5, 4.0), seed=1)
    res = evaluate(segment(ph.t1).labels, ph.labels, pred_label=L.SKULL, truth_label=L.SKULL)
    assert res["dice"] >= 0.88, res


def test_brain_and_intracranial_on_phantom(phantom_15, segmented_15):
    brain = evaluate(
        segmented_15.labels, phantom_15.labels, pred_label=L.BRAIN, truth_label=L.BRAIN
    )
    assert brain["dice"] >= 0.95, brain


def test_labels_on_input_grid_with_contract_values(phantom_15, segmented_15):
    lab = segmented_15.labels
    assert lab.same_grid(phantom_15.t1)
    assert lab.data.dtype == np.uint8
    assert set(np.unique(lab.data)) <= set(L.LABELS)
    for value in (L.SCALP, L.SKULL, L.CSF, L.BRAIN):
        assert np.any(lab.data == value)


def test_surfaces_nest_on_every_ray(segmented_15):
    s = segmented_15.surfaces
    assert np.all(s.outer_mm - s.inner_mm >= 1.5 - 1e-9)
    assert np.all(s.scalp_mm - s.outer_mm >= 2.0 - 1e-9)


def test_skull_encloses_brain(segmented_15):
    """No brain voxel touches the outside of the skull: brain and scalp never meet."""
    from scipy import ndimage as ndi

    lab = segmented_15.labels_work.data
    near_brain = ndi.binary_dilation(lab == L.BRAIN)
    assert not np.any(near_brain & (lab == L.SCALP))


def test_same_world_result_for_any_storage_orientation(phantom_15, segmented_15):
    """The same head stored as PIR gives the same labels at the same world points."""
    stored = reorient(phantom_15.t1, "PIR")
    other = segment(stored)
    back = reorient(other.labels, "RAS")
    assert back.same_grid(segmented_15.labels)
    agree = np.mean(back.data == segmented_15.labels.data)
    assert agree > 0.995


def test_deterministic(phantom_15, segmented_15):
    again = segment(phantom_15.t1)
    assert np.array_equal(again.labels.data, segmented_15.labels.data)


@pytest.mark.parametrize("seed", [1, 2])
def test_other_seeds_and_thin_bone(seed):
    """2 mm heads with 2 mm temporal bone (measured 0.871 for seed 1, 0.900 for seed 2)."""
    ph = make_phantom(2.0, seed=seed, thin_temporal_mm=2.0)
    res = segment(ph.t1)
    d = evaluate(res.labels, ph.labels, pred_label=L.SKULL, truth_label=L.SKULL)["dice"]
    assert d >= 0.85


def test_t2_alone_with_dark_white_matter_falls_back_to_t2_levels(caplog):
    """A T2 whose white matter is much darker than its grey matter (here x 0.7): the T1
    brain levels find no brain, the T2 levels do (skull Dice measured 0.924)."""
    ph = make_phantom(2.0, seed=0)
    brain = ph.labels.data == L.BRAIN
    t1 = ph.t1.data
    white = brain & (t1 > 0.85 * np.percentile(t1[brain], 95))
    data = ph.t2.data.copy()
    data[white] *= 0.7
    t2 = ph.t2.with_data(data)
    with caplog.at_level("INFO", logger="skullseg"):
        res = segment(t2, t2=t2, t1_weighted=False)
    assert "T2 levels instead" in caplog.text
    skull = evaluate(res.labels, ph.labels, pred_label=L.SKULL, truth_label=L.SKULL)
    assert skull["dice"] >= 0.9, skull


def test_the_contrast_is_decided_or_checked_from_the_atlas(monkeypatch):
    """With ``t1_weighted=None`` a bright-CSF image is segmented as a T2 alone; one forced
    to be a T1 gets a warning (the detector itself is pinned in test_priors.py)."""
    import skullseg.pipeline as pipeline

    monkeypatch.setattr(pipeline, "looks_t2_weighted", lambda *a, **k: True)
    t2 = make_phantom(4.0, seed=0).t2
    auto = segment(t2, t1_weighted=None, deformable_atlas=False)
    assert auto.t1_weighted is False
    assert any("segmented as a T2" in w for w in auto.warnings), auto.warnings
    forced = segment(t2, t1_weighted=True, deformable_atlas=False)
    assert forced.t1_weighted is True
    assert any("but is segmented as a T1" in w for w in forced.warnings), forced.warnings
