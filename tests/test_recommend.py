"""One test per rule of the decision guide; every snippet runs."""

from __future__ import annotations

import pytest
import torch

import losskit
from losskit.recommend import recommend

RULES = [
    # (task, situation, the loss the guide names first)
    ("regression", {}, "mse"),
    ("regression", {"outliers": True}, "huber"),
    ("quantile", {}, "quantile"),
    ("counts", {}, "poisson_nll"),
    ("relative_error", {}, "mape"),
    ("heteroscedastic", {}, "gaussian_nll"),
    ("binary", {}, "binary_cross_entropy_with_logits"),
    ("binary", {"imbalance_ratio": 5}, "binary_cross_entropy_with_logits"),  # with pos_weight
    ("binary", {"imbalance_ratio": 100}, "sigmoid_focal"),
    ("multiclass", {}, "cross_entropy"),
    ("multiclass", {"imbalance_ratio": 10}, "softmax_focal"),
    ("multilabel", {}, "binary_cross_entropy_with_logits"),
    ("binary", {"multi_label": True, "imbalance_ratio": 10}, "asymmetric"),
    ("multiclass", {"calibration": True}, "cross_entropy"),  # with label smoothing
    ("multiclass", {"label_noise": True}, "generalized_cross_entropy"),
    ("segmentation", {}, "dice_ce"),
    ("segmentation", {"small_objects": True}, "focal_tversky"),
    ("detection", {}, "giou"),
    ("contrastive", {}, "info_nce"),
    ("self_supervised", {}, "info_nce"),
    ("face_recognition", {}, "arcface"),
    ("retrieval", {}, "arcface"),
    ("ranking", {}, "listnet"),
    ("distillation", {}, "distillation"),
    ("multiclass", {"distillation": True}, "distillation"),
    ("vae", {}, "elbo"),
    ("gan", {}, "gan_generator"),
    ("ctc", {}, "ctc"),
    ("sequence", {"sequence_unaligned": True}, "ctc"),
]


def _resolve(name: str) -> str:
    try:
        return losskit.get_spec(name).name
    except losskit.LossInputError:
        return name


@pytest.mark.parametrize(("task", "situation", "expected"), RULES,
                         ids=[f"{t}-{'-'.join(s) or 'plain'}" for t, s, _ in RULES])
def test_rule(task: str, situation: dict, expected: str) -> None:
    top = recommend(task, **situation)[0]
    assert top.name == _resolve(expected)
    assert top.reason


def test_options_the_guide_names() -> None:
    assert "pos_weight" in recommend("binary", imbalance_ratio=5)[0].snippet
    assert recommend("multiclass", calibration=True)[0].options == {"label_smoothing": 0.1}
    assert recommend("distillation")[0].options["alpha"] == 0.9
    assert [s.name for s in recommend("regression", outliers=True)][:4] == [
        _resolve(n) for n in ("huber", "l1", "log_cosh", "pseudo_huber")]
    assert recommend("gan")[1].options == {"kind": "hinge"}


ALL = [(t, s) for t, s, _ in RULES]


@pytest.mark.parametrize(("task", "situation"), ALL, ids=[f"{t}-{'-'.join(s) or 'plain'}" for t, s in ALL])
def test_every_snippet_runs(task: str, situation: dict) -> None:
    for sug in recommend(task, **situation):
        if not sug.available:
            continue  # resolved through the registry once that family lands
        scope: dict = {}
        exec(sug.snippet, scope)
        loss_fn = scope["loss_fn"]
        if " + " in sug.name:  # a composition: call it on its first term's sample
            spec = losskit.get_spec(sug.name.split(" + ")[0])
        else:
            spec = losskit.get_spec(sug.name)
        gen = torch.Generator().manual_seed(0)
        s = spec.sample(gen, dtype=torch.float32)
        if sug.options.get("mode") == "binary" or " + " in sug.name:  # binary masks
            s.args = (torch.randn(2, 1, 8, 8, generator=gen),
                      (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float())
            s.kwargs = {}
        if "embedding_size" in sug.options:  # margin heads own their class weights
            s.args = (torch.randn(6, sug.options["embedding_size"], generator=gen),
                      torch.randint(sug.options["num_classes"], (6,), generator=gen))
            s.kwargs = {}
        kwargs = {k: v for k, v in s.kwargs.items() if k not in sug.options and k not in getattr(
            loss_fn, "options", {})}
        if hasattr(loss_fn, "_option_names"):
            kwargs = {k: v for k, v in kwargs.items() if k not in loss_fn._option_names()}
        value = loss_fn(*s.args, **kwargs)
        assert torch.isfinite(value).all(), sug.name


def test_unknown_task_raises() -> None:
    with pytest.raises(losskit.LossInputError, match="regression"):
        recommend("regresion")


def test_cli(capsys) -> None:  # type: ignore[no-untyped-def]
    from losskit.cli import main

    assert main(["recommend", "regression", "--outliers"]) == 0
    assert "huber" in capsys.readouterr().out.split("\n")[0]
