"""Seeded datasets for the monitor tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

CATEGORIES = np.array(["red", "green", "blue", "white"])
SHARES = np.array([0.4, 0.3, 0.2, 0.1])


def tabular(
    rng: np.random.Generator,
    n: int,
    *,
    shift: float = 0.0,
    shares: np.ndarray = SHARES,
    numeric: int = 4,
) -> pd.DataFrame:
    """``numeric`` standard normal features (the first shifted by ``shift`` σ), a count and a
    colour."""
    values = rng.standard_normal((n, numeric))
    values[:, 0] += shift
    frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(numeric)])
    frame["count"] = rng.poisson(3.0, n)
    frame["colour"] = CATEGORIES[rng.choice(len(CATEGORIES), n, p=shares)]
    return frame
