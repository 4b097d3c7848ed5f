"""Seeded synthetic vectors, ids and the exact faiss reference for index tests."""

from __future__ import annotations

import faiss
import numpy as np


def unit_vectors(n: int, dim: int, *, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def item_ids(n: int, *, prefix: str = "item-", start: int = 0) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(start, start + n)]


def exact_top(items: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference answer: a plain faiss IndexFlatIP over the same rows (row numbers)."""
    flat = faiss.IndexFlatIP(items.shape[1])
    flat.add(np.ascontiguousarray(items, dtype=np.float32))
    return flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def overlap(found: np.ndarray, expected: np.ndarray) -> float:
    """Mean share of each expected row present in the found row."""
    return float(np.mean([len(set(f) & set(e)) / len(e)
                          for f, e in zip(found.tolist(), expected.tolist(), strict=True)]))
