"""Optimal surface search on a sphere of rays, solved exactly as a minimum s-t cut.

This is the single-surface case of the layered optimal graph search of Li,
Wu, Chen & Sonka (2006): every ray ("column") has K candidate positions; a
surface picks one per column; neighbouring columns may differ by at most
``max_step`` positions. The surface of minimum total cost under that hard
smoothness constraint is the minimum closed set of a directed graph, found
with a max-flow solver (PyMaxflow, Boykov-Kolmogorov).
"""

from __future__ import annotations

import maxflow
import numpy as np
from numpy.typing import NDArray

__all__ = ["optimal_surface"]


def optimal_surface(cost: NDArray, neighbours: NDArray, max_step: int) -> NDArray[np.int64]:
    """Per-column index of the minimum-cost surface with bounded neighbour differences.

    Parameters
    ----------
    cost : ndarray, shape (n_columns, n_positions)
        Cost of the surface passing through each position (lower is better).
    neighbours : ndarray of int, shape (n_columns, m)
        Neighbouring columns of each column (repeats allowed).
    max_step : int
        Largest allowed index difference between neighbouring columns.

    Returns
    -------
    ndarray of int, shape (n_columns,)
        The chosen position in every column.

    Examples
    --------
    >>> cost = np.array([[0.0, 1.0, 9.0], [9.0, 9.0, 0.0]])
    >>> nb = np.array([[1], [0]])
    >>> optimal_surface(cost, nb, max_step=1).tolist()
    [1, 2]
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, k = cost.shape
    # node weights of the closed-set formulation: w(v,0) = c(v,0), w(v,j) = c(v,j) - c(v,j-1)
    w = np.empty_like(cost)
    w[:, 0] = cost[:, 0]
    w[:, 1:] = cost[:, 1:] - cost[:, :-1]
    # the bottom node of every column must be in the closed set: make it very attractive
    scale = 1.0 / max(float(np.abs(w[:, 1:]).max(initial=0.0)), 1e-9)
    w *= scale
    w[:, 0] = -1e6
    inf = 1e9

    g = maxflow.Graph[float](n * k, n * k * (1 + neighbours.shape[1]))
    nodes = g.add_nodes(n * k)
    ids = np.arange(n * k).reshape(n, k)
    # source/sink: negative weight -> from source, positive -> to sink
    g.add_grid_tedges(nodes, np.where(w < 0, -w, 0.0).ravel(), np.where(w > 0, w, 0.0).ravel())
    # intra-column: (v, j) -> (v, j-1)
    a = ids[:, 1:].ravel()
    b = ids[:, :-1].ravel()
    g.add_edges(a, b, np.full(a.size, inf), np.zeros(a.size))
    # inter-column: (v, j) -> (u, max(0, j - max_step))
    lower = np.maximum(np.arange(k) - max_step, 0)
    for m in range(neighbours.shape[1]):
        a = ids.ravel()
        b = ids[neighbours[:, m]][:, lower].ravel()
        keep = a != b
        g.add_edges(a[keep], b[keep], np.full(int(keep.sum()), inf), np.zeros(int(keep.sum())))
    g.maxflow()
    in_source = ~g.get_grid_segments(nodes).reshape(n, k)  # True = source side (closed set)
    # topmost node of each column that is in the closed set
    idx = k - 1 - np.argmax(in_source[:, ::-1], axis=1)
    return np.where(in_source.any(axis=1), idx, 0).astype(np.int64)
