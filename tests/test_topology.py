"""Tests for skullseg.topology: defect finding and decimation that keeps a closed manifold."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from skullseg import topology
from skullseg.mesh import Surface, check_mesh, icosphere, mask_to_surface
from skullseg.topology import decimate, defect_vertices, pinched_vertices
from skullseg.volume import Volume


def thin_shell(thickness_mm: float, n: int = 70) -> Surface:
    """Closed two-wall surface of an ellipsoidal shell 25 mm out, ``thickness_mm`` thick."""
    g = np.arange(n) - n / 2
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    r = np.sqrt(x**2 + (1.2 * y) ** 2 + z**2)
    mask = Volume(((r <= 25) & (r > 25 - thickness_mm)).astype(np.uint8), np.eye(4))
    return mask_to_surface(mask, target_faces=None)


def test_topology_examples_run():
    failed, _ = doctest.testmod(topology, extraglobs={"np": np})
    assert failed == 0


def test_closed_sphere_has_no_defects_and_a_hole_is_found():
    s = icosphere(3)
    assert len(defect_vertices(s.vertices, s.faces)) == 0
    assert set(defect_vertices(s.vertices, s.faces[5:]).tolist()) == set(s.faces[:5].ravel())


def test_duplicated_face_is_a_defect():
    s = icosphere(2)
    faces = np.vstack([s.faces, s.faces[:1, ::-1]])
    assert set(s.faces[0]) <= set(defect_vertices(s.vertices, faces).tolist())


def test_crossing_spheres_are_found():
    a, b = icosphere(2), icosphere(2)
    v = np.vstack([a.vertices, b.vertices + [1.0, 0, 0]])
    f = np.vstack([a.faces, b.faces + len(a.vertices)])
    bad = defect_vertices(v, f)
    assert len(bad) and (bad < len(a.vertices)).any() and (bad >= len(a.vertices)).any()


def test_pinch_found_only_at_the_shared_apex():
    s = icosphere(1)
    apex = int(np.argmax(s.vertices[:, 2]))
    f = np.vstack([s.faces, s.faces + len(s.vertices)])  # a second copy of the sphere ...
    f[f == apex + len(s.vertices)] = apex  # ... welded to the first at the apex
    assert pinched_vertices(f).tolist() == [apex]


@pytest.mark.parametrize("fraction", [0.1, 0.05])
def test_decimating_a_thin_shell_keeps_it_closed_and_uncrossed(fraction):
    # Quadric decimation alone leaves shared edges on this shell at 5 % (the two walls
    # are 2 mm apart); the replay without those collapses must not.
    shell = thin_shell(2.0)
    target = int(fraction * len(shell.faces))
    result = decimate(shell.vertices, shell.faces, target)
    assert result is not None
    v, f = result
    info = check_mesh(Surface(v, f))
    assert len(f) <= target
    assert info["watertight"] and info["manifold"] and not info["self_intersecting"]
    assert info["n_bodies"] == 2
    assert info["volume_ml"] == pytest.approx(check_mesh(shell)["volume_ml"], rel=0.03)
    assert len(defect_vertices(v, f)) == 0


def test_decimate_is_deterministic():
    shell = thin_shell(2.0)
    a = decimate(shell.vertices, shell.faces, 2000)
    b = decimate(shell.vertices, shell.faces, 2000)
    assert a is not None and b is not None
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
