"""Telling a T2 from a T1 by where the registered atlas expects CSF."""

from __future__ import annotations

import numpy as np
import pytest

from skullseg.conform import conform
from skullseg.head import head_mask
from skullseg.io import load_volume
from skullseg.priors import affine_priors, fit_atlas, fluid_to_brain_ratio, looks_t2_weighted
from skullseg.volume import Volume


def _head(fluid: float, brain: float, seed: int = 0):
    """A cube of 'brain' with a slab of 'CSF', noisy, and matching priors."""
    rng = np.random.default_rng(seed)
    img = np.full((20, 20, 20), brain, np.float32)
    img[8:12] = fluid
    img += rng.normal(0, 0.05 * brain, img.shape).astype(np.float32)
    csf = np.zeros(img.shape, np.float32)
    csf[8:12] = 0.9
    v = Volume(img, np.diag([2.0, 2.0, 2.0, 1.0]))
    head = v.with_data(np.ones(img.shape, bool))
    return v, head, {"csf": v.with_data(csf), "brain": v.with_data(1.0 - csf)}


def test_csf_darker_than_brain_is_a_t1_brighter_is_a_t2():
    t1 = _head(fluid=30.0, brain=100.0)
    t2 = _head(fluid=250.0, brain=100.0)
    assert fluid_to_brain_ratio(*t1) < 0.5 < 2.0 < fluid_to_brain_ratio(*t2)
    assert not looks_t2_weighted(*t1) and looks_t2_weighted(*t2)


def test_a_proton_density_like_image_stays_a_t1():
    """CSF about as bright as brain (PD-like, the Visible Male reads 0.93) is not a T2."""
    assert not looks_t2_weighted(*_head(fluid=95.0, brain=100.0))


def test_no_csf_region_is_undecided_and_counts_as_t1():
    v, head, priors = _head(fluid=250.0, brain=100.0)
    priors["csf"] = v.with_data(np.zeros(v.shape, np.float32))
    assert np.isnan(fluid_to_brain_ratio(v, head, priors))
    assert not looks_t2_weighted(v, head, priors)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "t2"),
    [
        ("axial_t2_1x1x2mm.nii.gz", True),
        ("tumour_t1_2.6mm_partial.nii.gz", True),  # named T1, but its CSF is bright
        ("visible_male_mri_5mm.nii.gz", False),  # PD-like T1: the closest of the T1s
        ("rire001_t1_4mm.nii.gz", False),
    ],
)
def test_real_heads_contrast_is_detected(data_dir, name, t2):
    """Measured at 2 mm: 1.59, 2.67, 0.93, 0.79 against the threshold 1.2."""
    work = conform(load_volume(data_dir / "heads" / name), 2.0)
    head = head_mask(work)
    transform, note = fit_atlas(work, head)
    assert transform is not None, note
    assert looks_t2_weighted(work, head, affine_priors(work, transform)) is t2
