"""The decision guide: which loss for which problem, ranked, with the reason and a snippet.

``recommend(task, **situation)`` encodes the classic rules (regression clean → MSE, with
outliers → Huber, quantiles → pinball, counts → Poisson NLL, …, CTC → CTC). Suggestions name
registry entries; each snippet builds the loss through ``losskit.get`` so it resolves at call
time (a suggestion whose loss is not registered in this build is still given, marked
``available=False``).

Examples:
    >>> import losskit
    >>> [s.name for s in losskit.recommend("regression", outliers=True)][:2]
    ['huber', 'l1']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from losskit._core.checks import LossInputError, did_you_mean
from losskit._core.registry import get_spec

__all__ = ["TASKS", "Suggestion", "recommend"]

#: Task names (and synonyms) the guide knows.
TASKS: dict[str, str] = {
    "regression": "regression",
    "quantile": "quantile", "quantiles": "quantile", "intervals": "quantile",
    "quantile_regression": "quantile",
    "counts": "counts", "count_regression": "counts", "poisson": "counts",
    "relative_error": "relative_error", "multiplicative": "relative_error",
    "heteroscedastic": "heteroscedastic", "uncertainty": "heteroscedastic",
    "binary": "binary", "binary_classification": "binary",
    "multiclass": "multiclass", "classification": "multiclass",
    "multilabel": "multilabel", "multi_label": "multilabel",
    "segmentation": "segmentation",
    "detection": "detection", "boxes": "detection",
    "contrastive": "contrastive", "self_supervised": "contrastive",
    "face_recognition": "metric", "retrieval": "metric", "metric": "metric",
    "ranking": "ranking", "learning_to_rank": "ranking",
    "distillation": "distillation",
    "vae": "vae", "gan": "gan", "ctc": "ctc", "sequence": "ctc", "speech": "ctc",
}


@dataclass
class Suggestion:
    """One ranked suggestion: the registry ``name``, why, and a snippet that builds it."""

    name: str
    reason: str
    options: dict[str, Any] = field(default_factory=dict)
    snippet: str = ""
    available: bool = True

    def __str__(self) -> str:
        flag = "" if self.available else "  (not registered in this build)"
        return f"{self.name}: {self.reason}{flag}\n" + "\n".join(
            "    " + line for line in self.snippet.splitlines()
        )


def _opt(v: Any) -> str:
    return v if isinstance(v, _Code) else repr(v)


class _Code(str):
    """An option value written as code (e.g. ``torch.tensor([9.0])``)."""


def _s(name: str, reason: str, **options: Any) -> Suggestion:
    args = "".join(f", {k}={_opt(v)}" for k, v in options.items())
    needs_torch = any(isinstance(v, _Code) and "torch." in v for v in options.values())
    lines = ["import torch"] if needs_torch else []
    lines += ["import losskit", f'loss_fn = losskit.get("{name}"{args})']
    try:
        resolved = get_spec(name).name
        available = True
    except LossInputError:
        resolved, available = name, False
    return Suggestion(resolved, reason, dict(options), "\n".join(lines), available)


def _compose(parts: list[tuple[float, str, dict[str, Any]]], reason: str) -> Suggestion:
    terms = " + ".join(
        f'weighted({w}, losskit.get("{n}"' + "".join(f", {k}={_opt(v)}" for k, v in o.items()) + "))"
        for w, n, o in parts
    )
    snippet = f"import losskit\nfrom losskit.compose import weighted\nloss_fn = {terms}"
    available = True
    for _, n, _ in parts:
        try:
            get_spec(n)
        except LossInputError:
            available = False
    name = " + ".join(n for _, n, _ in parts)
    return Suggestion(name, reason, {}, snippet, available)


def recommend(
    task: str,
    *,
    outliers: bool = False,
    imbalance_ratio: float | None = None,
    label_noise: bool = False,
    multi_label: bool = False,
    calibration: bool = False,
    small_objects: bool = False,
    embedding: bool = False,
    distillation: bool = False,
    sequence_unaligned: bool = False,
    labels: bool = False,
) -> list[Suggestion]:
    """Ranked loss suggestions for a task and situation.

    Args:
        task: one of :data:`TASKS` (``"regression"``, ``"quantile"``, ``"counts"``,
            ``"relative_error"``, ``"heteroscedastic"``, ``"binary"``, ``"multiclass"``,
            ``"multilabel"``, ``"segmentation"``, ``"detection"``, ``"contrastive"``,
            ``"face_recognition"``/``"retrieval"``, ``"ranking"``, ``"distillation"``, ``"vae"``,
            ``"gan"``, ``"ctc"``) or a synonym.
        outliers: the regression targets have gross outliers.
        imbalance_ratio: negatives per positive (binary/multilabel) or largest/smallest class.
        label_noise: some labels are wrong.
        multi_label: several labels per sample (turns ``binary``/``multiclass`` into multilabel).
        calibration: the model is overconfident / probabilities must be calibrated.
        small_objects: segmentation of small structures (recall matters).
        embedding: the output is an embedding (turns classification into metric learning).
        distillation: a teacher's logits are available.
        sequence_unaligned: input and label sequences are not aligned (CTC).
        labels: contrastive learning with class labels (supervised contrastive).

    Returns:
        Suggestions, best first; each has ``name``, ``reason``, ``snippet`` (runs as is) and
        ``available``.
    """
    key = TASKS.get(task.strip().lower().replace("-", "_").replace(" ", "_"))
    if key is None:
        raise LossInputError(f"unknown task {task!r}.{did_you_mean(task, TASKS)} Tasks: {', '.join(TASKS)}.")
    if distillation:
        key = "distillation"
    elif sequence_unaligned:
        key = "ctc"
    elif embedding and key in ("multiclass", "binary"):
        key = "metric"
    elif multi_label and key in ("binary", "multiclass"):
        key = "multilabel"
    ratio = imbalance_ratio or 1.0
    out: list[Suggestion] = []
    if key == "regression":
        if outliers:
            out += [
                _s("huber", "outliers: quadratic near 0, linear beyond δ (bounded influence)", delta=1.0),
                _s("l1", "outliers: the median, gradient bounded by 1"),
                _s("log_cosh", "outliers, and smooth everywhere (C∞)"),
                _s("pseudo_huber", "a smooth Huber (Charbonnier)", delta=1.0),
            ]
        else:
            out += [
                _s("mse", "clean Gaussian-like noise: the conditional mean, smooth and convex"),
                _s("huber", "if a few outliers appear", delta=1.0),
            ]
    elif key == "quantile":
        out += [_s("quantile", "the τ-quantile (pinball loss); one per quantile for an interval",
                   quantile=0.9)]
    elif key == "counts":
        out += [_s("poisson_nll", "counts: Poisson likelihood of a log-rate", log_input=True),
                _s("tweedie_deviance", "over-dispersed counts or zero-inflated amounts", power=1.5)]
    elif key == "relative_error":
        out += [_s("mape", "errors relative to the target's size (scale-free)"),
                _s("msle", "multiplicative errors: squared error of log(1 + y)")]
    elif key == "heteroscedastic":
        out += [_s("gaussian_nll", "predict the mean and the variance (noise varies by input)")]
    elif key == "binary":
        plain = _s("binary_cross_entropy_with_logits", "balanced binary labels: log-loss on logits")
        if ratio >= 20:
            out += [_s("sigmoid_focal", f"severe imbalance ({ratio:g}:1): focal down-weights easy negatives",
                       alpha=0.25, gamma=2.0),
                    _s("binary_cross_entropy_with_logits", "imbalance: weight the positives",
                       pos_weight=_Code(f"torch.tensor({float(ratio)!r})"))]
        elif ratio >= 3:
            out += [_s("binary_cross_entropy_with_logits", f"imbalance ({ratio:g}:1): pos_weight = ratio",
                       pos_weight=_Code(f"torch.tensor({float(ratio)!r})")),
                    _s("sigmoid_focal", "stronger imbalance: focal loss", alpha=0.25, gamma=2.0)]
        else:
            out.append(plain)
        if label_noise:
            out.insert(0, _s("generalized_cross_entropy", "noisy labels: GCE interpolates CE and MAE",
                             q=0.7))
    elif key == "multiclass":
        if label_noise:
            out += [_s("generalized_cross_entropy", "noisy labels: GCE interpolates CE and MAE", q=0.7),
                    _s("symmetric_cross_entropy", "noisy labels: CE + reverse CE")]
        if calibration:
            out += [_s("cross_entropy", "overconfidence: label smoothing", label_smoothing=0.1)]
        if ratio >= 3:
            out += [_s("softmax_focal", f"class imbalance ({ratio:g}:1): focal loss", gamma=2.0),
                    _s("cross_entropy", "class imbalance: class weights ∝ 1/frequency")]
        out += [_s("cross_entropy", "one label out of K: softmax cross-entropy")]
    elif key == "multilabel":
        if ratio >= 3:
            out += [_s("asymmetric", f"multi-label imbalance ({ratio:g}:1): asymmetric loss (ASL)")]
        out += [_s("binary_cross_entropy_with_logits", "independent labels: one sigmoid per label")]
    elif key == "segmentation":
        if small_objects:
            out += [_s("focal_tversky", "small objects: Tversky (β > α favours recall), focal",
                       mode="binary", alpha=0.3, beta=0.7),
                    _s("tversky", "small objects: recall-weighted overlap", mode="binary", alpha=0.3,
                       beta=0.7)]
        out += [_s("dice_ce", "overlap (Dice) + pixel-wise cross-entropy: the robust default",
                   mode="binary"),
                _compose([(0.5, "dice", {"mode": "binary"}),
                          (0.5, "binary_cross_entropy_with_logits", {})],
                         "the same as a composition you can reweight")]
    elif key == "detection":
        out += [_s("giou", "box regression: generalized IoU (scale-invariant)", box_format="xyxy"),
                _s("diou", "faster convergence: IoU + centre distance", box_format="xyxy"),
                _s("ciou", "IoU + centre distance + aspect ratio", box_format="xyxy"),
                _s("sigmoid_focal", "the classification head: dense anchors are imbalanced",
                   alpha=0.25, gamma=2.0)]
    elif key == "contrastive":
        if labels:
            out += [_s("supcon", "labels available: supervised contrastive")]
        out += [_s("info_nce", "self-supervised: pull positives, push in-batch negatives",
                   temperature=0.1),
                _s("nt_xent", "SimCLR's two-view form", temperature=0.5),
                _s("clip", "paired modalities (image-text)", logit_scale=1 / 0.07),
                _s("siglip", "paired modalities, sigmoid: no global softmax", logit_scale=10.0,
                   logit_bias=-10.0)]
    elif key == "metric":
        out += [_s("arcface", "face recognition / retrieval: additive angular margin",
                   num_classes=1000, embedding_size=512, margin=0.5, scale=64.0),
                _s("cosface", "additive cosine margin", num_classes=1000, embedding_size=512,
                   margin=0.35, scale=64.0),
                _s("batch_hard_triplet", "retrieval with pairs: triplet on the hardest in batch",
                   margin=0.2)]
    elif key == "ranking":
        out += [_s("listnet", "listwise: cross-entropy of the top-one distributions"),
                _s("listmle", "listwise: likelihood of the true permutation"),
                _s("ranknet", "pairwise: logistic loss on score differences")]
    elif key == "distillation":
        out += [_s("distillation", "0.9·T²·KL(teacher‖student at T) + 0.1·CE(hard labels)",
                   alpha=0.9, temperature=4.0)]
    elif key == "vae":
        out += [_s("elbo", "reconstruction + β·KL(q(z|x) ‖ N(0, I))", beta=1.0)]
    elif key == "gan":
        out += [_s("gan_generator", "non-saturating generator loss", kind="non_saturating"),
                _s("gan_discriminator", "hinge discriminator loss", kind="hinge")]
    elif key == "ctc":
        out += [_s("ctc", "unaligned sequences: CTC marginalises over alignments")]
    # one entry per distinct (name, options)
    seen: set[str] = set()
    ranked = []
    for sug in out:
        if sug.snippet not in seen:
            seen.add(sug.snippet)
            ranked.append(sug)
    return ranked
