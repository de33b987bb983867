"""Label-derived pseudo-CT (:mod:`skullseg.pseudo_ct`)."""

from __future__ import annotations

import numpy as np
import pytest

from skullseg import labels as L
from skullseg.phantom import make_phantom, reorient
from skullseg.pseudo_ct import HU, pseudo_ct


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(2.0, seed=0)


def test_values_per_label_without_smoothing(phantom):
    ct = pseudo_ct(phantom.labels, smooth_mm=0)
    lab = phantom.labels.data
    assert ct.same_grid(phantom.labels)
    assert ct.data.dtype == np.float32
    for label, name in [
        (L.BACKGROUND, "air"),
        (L.SCALP, "soft"),
        (L.CSF, "csf"),
        (L.BRAIN, "brain"),
        (L.AIR_CAVITY, "air"),
    ]:
        assert np.all(ct.data[lab == label] == HU[name]), name
    skull = set(np.unique(ct.data[lab == L.SKULL]).tolist())
    assert skull == {HU["cortical"], HU["cancellous"]}  # thick bone has a diploe core


def test_t1_separates_marrow_and_fat(phantom):
    plain = pseudo_ct(phantom.labels, smooth_mm=0).data
    with_t1 = pseudo_ct(phantom.labels, image=phantom.t1, smooth_mm=0).data
    skull = phantom.labels.data == L.SKULL
    # the phantom's diploe is bright in the T1 and ~600 HU in its CT
    true_diploe = skull & (phantom.ct.data < 1000)
    err_plain = np.abs(plain[skull] - phantom.ct.data[skull]).mean()
    err_t1 = np.abs(with_t1[skull] - phantom.ct.data[skull]).mean()
    assert err_t1 < err_plain
    assert (with_t1[true_diploe] == HU["cancellous"]).mean() > (
        with_t1[skull & ~true_diploe] == HU["cancellous"]
    ).mean()
    assert np.any(with_t1 == HU["fat"])


def test_image_on_another_grid_is_resampled(phantom):
    a = pseudo_ct(phantom.labels, image=phantom.t1)
    b = pseudo_ct(phantom.labels, image=reorient(phantom.t1, "PIL"))
    assert np.allclose(a.data, b.data, atol=1e-3)


def test_smoothing_blurs_boundaries_only(phantom):
    ct = pseudo_ct(phantom.labels, smooth_mm=2.0).data
    assert -1000.0 <= ct.min() and ct.max() <= HU["cortical"] + 1e-3
    assert ct[0, 0, 0] == pytest.approx(HU["air"])
    assert len(np.unique(ct)) > 100


def test_docstring_says_it_is_not_a_measured_ct():
    assert "not" in pseudo_ct.__doc__ and "measured CT" in pseudo_ct.__doc__
