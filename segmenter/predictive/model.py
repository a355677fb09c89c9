"""The model file of SPEC section 12: fitted parameters plus what they were fitted on, as JSON.

`load_model` is the one place that validates a model file, so `model fit`, `rules check` and the workers
reject the same files with the same messages.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segmenter.predictive.bgnbd import BgNbdParams
from segmenter.predictive.gamma_gamma import GammaGammaParams

TIME_UNIT = "day"
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


@dataclass(frozen=True, slots=True)
class Model:
    """Both fitted models; `as_of` is the day the summaries were taken at."""

    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams
    as_of: dt.date
    currency: str = "USD"
    customers: int = 0
    repeat_customers: int = 0
    log_likelihood_bgnbd: float = 0.0
    log_likelihood_gamma_gamma: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The document written by `segmenter model fit` (key order as in SPEC section 12)."""
        b, g = self.bgnbd, self.gamma_gamma
        return {
            "bgnbd": {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b},
            "gamma_gamma": {"p": g.p, "q": g.q, "v": g.v},
            "time_unit": TIME_UNIT,
            "currency": self.currency,
            "as_of": self.as_of.isoformat(),
            "customers": self.customers,
            "repeat_customers": self.repeat_customers,
            "log_likelihood": {
                "bgnbd": self.log_likelihood_bgnbd,
                "gamma_gamma": self.log_likelihood_gamma_gamma,
            },
        }

    def parameters_text(self) -> str:
        """Canonical text of the seven parameters (what a rules version should hash)."""
        b, g = self.bgnbd, self.gamma_gamma
        values = {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b, "p": g.p, "q": g.q, "v": g.v}
        return json.dumps(values, sort_keys=True, separators=(",", ":"))


def dump_model(model: Model, path: str | Path) -> None:
    """Write the model file (JSON, floats with full precision)."""
    Path(path).write_text(json.dumps(model.to_json(), indent=2) + "\n", encoding="utf-8")


def load_model(path: str | Path) -> Model:
    """Read and validate a model file; every problem is a one-line ValueError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the model file: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        return parse_model(document)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def parse_model(document: object) -> Model:
    """Validate a decoded model document (extra keys are allowed, as SPEC section 12 says)."""
    if not isinstance(document, dict):
        raise ValueError("the model must be a JSON object")
    bg = _section(document, "bgnbd", ("r", "alpha", "a", "b"))
    gg = _section(document, "gamma_gamma", ("p", "q", "v"))
    if bg["a"] == 1.0:
        raise ValueError("bgnbd.a must not be exactly 1 (the expected purchases formula divides by a - 1)")
    if gg["q"] <= 1.0:
        raise ValueError(f"gamma_gamma.q must be > 1 for a finite expected spend, got {gg['q']!r}")
    unit = document.get("time_unit")
    if unit != TIME_UNIT:
        raise ValueError(f'time_unit must be "day", got {unit!r}')
    currency = document.get("currency", "USD")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise ValueError(f"currency must be a 3-letter ISO 4217 code, got {currency!r}")
    as_of = _date(document.get("as_of"))
    customers = _count(document, "customers")
    repeat = _count(document, "repeat_customers")
    if repeat > customers:
        raise ValueError(f"repeat_customers ({repeat}) exceeds customers ({customers})")
    ll = document.get("log_likelihood")
    if not isinstance(ll, dict):
        raise ValueError("log_likelihood must be an object with keys bgnbd and gamma_gamma")
    ll_bg, ll_gg = (_number(ll.get(key), f"log_likelihood.{key}") for key in ("bgnbd", "gamma_gamma"))
    return Model(
        BgNbdParams(bg["r"], bg["alpha"], bg["a"], bg["b"]),
        GammaGammaParams(gg["p"], gg["q"], gg["v"]),
        as_of,
        currency,
        customers,
        repeat,
        ll_bg,
        ll_gg,
    )


def _section(document: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, float]:
    section = document.get(name)
    if not isinstance(section, dict):
        raise ValueError(f"{name} must be an object with keys {', '.join(keys)}")
    values = {}
    for key in keys:
        value = _number(section.get(key), f"{name}.{key}")
        if value <= 0:
            raise ValueError(f"{name}.{key} must be > 0, got {value!r}")
        values[key] = value
    return values


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _count(document: dict[str, Any], key: str) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _date(value: object) -> dt.date:
    if isinstance(value, str) and _DATE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"as_of must be a date YYYY-MM-DD, got {value!r}")
