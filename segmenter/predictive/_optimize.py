"""Maximum likelihood on log-parameters with bounded L-BFGS-B, shared by both models.

Log-parameters keep every parameter positive without constraints in the model code; the bounds only stop
the search from wandering into overflow when the data say little about a parameter.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

FloatArray = npt.NDArray[np.float64]

LOG_BOUND = 18.0  # parameters within [e^-18, e^18] ~ [1.5e-8, 6.6e7]


class FitError(ValueError):
    """The optimiser did not converge to a finite maximum."""


def maximise(
    log_likelihood: Callable[[FloatArray], float], start: FloatArray, names: tuple[str, ...]
) -> tuple[FloatArray, float]:
    """Parameters (not logged) maximising `log_likelihood(params)`, and the maximum.

    The objective is scaled by its value at the start so the optimiser's tolerances mean the same thing
    whatever the number of customers.
    """
    scale = max(abs(log_likelihood(start)), 1.0)

    def objective(log_params: FloatArray) -> float:
        value = log_likelihood(np.exp(log_params))
        return -value / scale if np.isfinite(value) else 1e300

    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    result = minimize(
        objective,
        np.log(start),
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20},
    )
    params = np.exp(np.asarray(result.x, dtype=np.float64))
    value = log_likelihood(params)
    if not np.isfinite(value):
        raise FitError(f"the fit of ({', '.join(names)}) did not reach a finite log-likelihood")
    return params, float(value)
