"""The one geometric type of skullseg: an array with the affine that places it in the world.

Every stage takes and returns :class:`Volume` objects, so voxel data never
travels without its position. World coordinates are RAS millimetres (the
NIfTI / nibabel convention: x to the Right, y Anterior, z Superior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Volume"]


@dataclass(frozen=True)
class Volume:
    """A 3D image and the 4x4 voxel-to-world (RAS mm) affine that places it.

    Parameters
    ----------
    data : ndarray, shape (I, J, K)
        Voxel values. Any dtype; stages convert as they need.
    affine : ndarray, shape (4, 4)
        Maps voxel indices ``(i, j, k, 1)`` to world RAS millimetres.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((10, 10, 10), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> v.zooms_mm
    (2.0, 2.0, 2.0)
    >>> v.voxel_volume_ml
    0.008
    """

    data: NDArray
    affine: NDArray

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        affine = np.asarray(self.affine, dtype=np.float64)
        if data.ndim != 3:
            raise ValueError(f"Volume needs 3D data, got shape {data.shape}")
        if affine.shape != (4, 4):
            raise ValueError(f"Volume needs a 4x4 affine, got shape {affine.shape}")
        if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("Volume affine is singular or not finite")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", affine)

    # -- geometry ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def zooms_mm(self) -> tuple[float, float, float]:
        """Voxel edge lengths in mm (column norms of the affine)."""
        z = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return tuple(float(round(v, 6)) for v in z)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm^3)."""
        return float(round(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0, 12))

    def with_data(self, data: ArrayLike) -> Volume:
        """Same grid, new voxel values."""
        data = np.asarray(data)
        if data.shape != self.shape:
            raise ValueError(f"shape {data.shape} does not match grid {self.shape}")
        return Volume(data, self.affine)

    def crop(self, index: tuple[slice, slice, slice]) -> Volume:
        """The sub-grid ``data[index]`` (unit-step slices) with its own affine, as a copy.

        Examples
        --------
        >>> part = (slice(1, 3), slice(None), slice(2, None))
        >>> v = Volume(np.zeros((4, 4, 4)), np.eye(4)).crop(part)
        >>> v.shape, v.voxel_to_world([[0, 0, 0]]).tolist()
        ((2, 4, 2), [[1.0, 0.0, 2.0]])
        """
        start = [sl.indices(n)[0] for sl, n in zip(index, self.shape)]
        shift = np.eye(4)
        shift[:3, 3] = start
        return Volume(np.ascontiguousarray(self.data[index]), self.affine @ shift)

    def voxel_to_world(self, ijk: ArrayLike) -> NDArray[np.float64]:
        """Map voxel coordinates (N, 3) to world RAS mm (N, 3)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: ArrayLike) -> NDArray[np.float64]:
        """Map world RAS mm (N, 3) to continuous voxel coordinates (N, 3)."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=np.float64)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def world_coordinate(self, axis: int) -> NDArray[np.float64]:
        """World coordinate ``axis`` (0 x, 1 y, 2 z; mm) of every voxel centre, grid-shaped.

        Examples
        --------
        >>> Volume(np.zeros((1, 1, 3)), np.diag([1.0, 1.0, 2.0, 1.0])).world_coordinate(2)
        array([[[0., 2., 4.]]])
        """
        a = self.affine[axis]
        i, j, k = (np.arange(n, dtype=np.float64) for n in self.shape)
        return a[0] * i[:, None, None] + a[1] * j[None, :, None] + a[2] * k[None, None, :] + a[3]

    def center_world(self) -> NDArray[np.float64]:
        """World position of the centre of the grid."""
        return self.voxel_to_world((np.array(self.shape, dtype=np.float64) - 1) / 2.0)

    def same_grid(self, other: Volume, atol: float = 1e-4) -> bool:
        """True when ``other`` has the same shape and affine."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)
