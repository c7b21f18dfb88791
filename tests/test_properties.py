"""The property probes agree with every registered loss's declared properties, and measure
the classic facts (MSE → mean, MAE → median, pinball(τ) → τ-quantile, Huber is only C1, ...)."""

from __future__ import annotations

import warnings

import pytest
import torch

import losskit
from losskit import properties as P
from losskit._core.registry import LossSpec, Properties
from losskit._core.samples import regression_sample

SPECS = losskit.catalog()

#: Declarations the probes contradict, reported to the family owners with the evidence; the test
#: xfails on exactly these (any other disagreement fails).
KNOWN_DISAGREEMENTS: dict[tuple[str, str], str] = {}


def _probe(spec: LossSpec) -> P.ProbeRow:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return P.probe(spec)


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_probe_agrees_with_declaration(spec: LossSpec) -> None:
    row = _probe(spec)
    bad, known = {}, []
    for field, verdict in P.verdicts(spec, row).items():
        if verdict != "disagrees":
            continue
        declared, measured = getattr(spec.properties, field), getattr(row, field)
        if (spec.name, field) in KNOWN_DISAGREEMENTS:
            known.append(f"{field}: {KNOWN_DISAGREEMENTS[spec.name, field]}")
            continue
        bad[field] = f"declared {declared!r}, measured {measured!r}"
    assert not bad, f"{spec.name}: {bad}"
    if known:
        pytest.xfail("; ".join(known))


def _reg(name: str) -> LossSpec:
    return losskit.get_spec(name)


def test_induced_estimators_on_a_skewed_sample() -> None:
    assert _probe(_reg("mse")).minimizer == "mean"
    assert _probe(_reg("l1")).minimizer == "median"
    row = _probe(_reg("quantile"))
    assert row.minimizer == "quantile"
    # independently: the 0.8-quantile of the probe's lognormal sample
    gen = torch.Generator().manual_seed(P._SEED + 4)
    y = torch.exp(torch.randn(1001, generator=gen, dtype=torch.float64))
    assert row.minimizer_value == pytest.approx(float(torch.quantile(y, 0.8)), rel=1e-3)
    assert _probe(_reg("huber")).minimizer == "other"  # between the mean and the median


def test_classic_facts() -> None:
    mse, mae, huber = _probe(_reg("mse")), _probe(_reg("l1")), _probe(_reg("huber"))
    assert (mse.convex, mse.smoothness, mse.robust, mse.homogeneity) == (True, "C2+", "none", 2.0)
    assert (mae.convex, mae.smoothness, mae.robust, mae.homogeneity) == (
        True, "C0", "bounded_influence", 1.0)
    assert (huber.smoothness, huber.robust, huber.homogeneous) == ("C1", "bounded_influence", False)
    assert _probe(_reg("log_cosh")).smoothness == "C2+"
    assert _probe(_reg("quantile")).symmetric is False
    assert _probe(_reg("msle")).convex is False


def _custom(fn, name: str = "custom", **kw) -> LossSpec:  # type: ignore[no-untyped-def]
    return LossSpec(name=name, fn=fn, family="regression", tasks=("regression",),
                    input_kind="prediction", target_kind="real", properties=Properties(**kw),
                    formula="", references=(), sample=regression_sample())


def test_probes_catch_wrong_claims() -> None:
    """A probe is able to fail: wrong claims on known functions are flagged."""

    def cubic(x: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        return ((x - y).abs() ** 3).mean()

    spec = _custom(cubic, "cubic_abs", convex=True, smoothness="C0", robust="bounded_influence",
                   homogeneity=2, symmetric=False)
    row = P.probe(spec, cache=False)
    v = P.verdicts(spec, row)
    assert v["convex"] == "verified"
    # |r|³ is C2: a kink claim the probe finds no evidence for is "unconfirmed", not a pass
    assert (row.smoothness, v["smoothness"]) == ("C2+", "unconfirmed")
    assert (row.homogeneity, row.robust) == (3.0, "none")
    assert v["robust"] == "disagrees"
    assert v["homogeneity"] == "disagrees"
    assert v["symmetric"] == "disagrees"

    def kinked(x: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        return (x - y).abs().mean()

    spec = _custom(kinked, "kinked", smoothness="Cinf", convex=False)
    v = P.verdicts(spec, P.probe(spec, cache=False))
    assert (v["smoothness"], v["convex"]) == ("disagrees", "unconfirmed")


def test_not_probed_is_not_a_tick() -> None:
    """A loss whose input the probes cannot move gives "not probed", never "verified"."""

    def opaque(x: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        raise RuntimeError("cannot evaluate")

    spec = _custom(opaque, "opaque", convex=True, smoothness="C1", robust="none", homogeneity=2)
    assert set(P.verdicts(spec, P.probe(spec, cache=False)).values()) == {"not probed", "no claim"}
