"""check_loss passes a correct custom loss and flags broken ones."""

from __future__ import annotations

import torch

import losskit


def good_l2(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r = (input - target).square()
    return r if reduction == "none" else r.sum() if reduction == "sum" else r.mean()


class _WrongGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        ctx.save_for_backward(r)
        return r.square()

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        (r,) = ctx.saved_tensors
        return g * r  # should be 2·r


def wrong_grad(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    return _WrongGrad.apply(input - target).mean()


def nan_at_zero(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((input - target).square()).mean()  # |r| written as sqrt(r²): d/dr at 0 is NaN


def test_correct_loss_passes() -> None:
    rep = losskit.check_loss(good_l2, verbose=False)
    assert rep.passed, str(rep)
    assert rep.results["gradcheck"][0] == "pass" and rep.results["compile"][0] == "pass"
    assert rep.properties is not None
    assert (rep.properties.convex, rep.properties.homogeneity, rep.properties.minimizer) == (
        True, 2.0, "mean")
    assert rep.results["half"][0] == "info" and "float16 in" in rep.results["half"][1]


def test_wrong_gradient_is_flagged() -> None:
    rep = losskit.check_loss(wrong_grad, verbose=False)
    assert not rep.passed
    assert "gradcheck" in rep.failures


def test_nan_at_zero_is_flagged() -> None:
    rep = losskit.check_loss(nan_at_zero, verbose=False)
    assert "perfect_prediction" in rep.failures
    assert rep.results["reductions"][0] == "n/a"


def test_module_and_summary(capsys) -> None:  # type: ignore[no-untyped-def]
    rep = losskit.check_loss(losskit.nn.HuberLoss(), name="huber", verbose=True)
    out = capsys.readouterr().out
    assert rep.passed and "check_loss(huber): PASS" in out
    assert rep.properties is not None and rep.properties.smoothness == "C1"


def test_classification_default_sample() -> None:
    rep = losskit.check_loss(torch.nn.functional.cross_entropy, input_kind="logits",
                             target_kind="class_index", verbose=False)
    assert rep.results["gradcheck"][0] == "pass"
    assert rep.results["reductions"][0] == "pass"


def test_cli_check(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mylosses.py").write_text(
        "import torch\n"
        "def bad(input, target):\n"
        "    return torch.sqrt((input - target) ** 2).mean()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from losskit.cli import main

    assert main(["check", "mylosses:bad"]) == 1
    assert "perfect_prediction" in capsys.readouterr().out
