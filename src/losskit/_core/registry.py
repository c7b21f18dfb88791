"""The one registry: every loss is declared once, with ``@register``, next to its function.

The spec carries what the rest of the library derives from: the catalog, ``losskit.get``,
the CLI, the property table, the atlas and the contract test.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from string import Template
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from losskit._core.checks import LossInputError, did_you_mean

if TYPE_CHECKING:
    from losskit._core.module import LossModule

__all__ = [
    "DOC_FRAGMENTS",
    "FAMILIES",
    "LossSpec",
    "Properties",
    "Sample",
    "catalog",
    "get",
    "get_spec",
    "register",
]

Smoothness = Literal["C0", "C1", "C2", "Cinf"]
Robustness = Literal["none", "bounded_influence", "redescending"]

FAMILIES: tuple[str, ...] = (
    "regression",
    "classification",
    "imbalance",
    "segmentation",
    "boxes",
    "metric",
    "contrastive",
    "ranking",
    "divergence",
    "distillation",
    "generative",
    "image",
    "sequence",
)


@dataclass(frozen=True)
class Properties:
    """Claims about a loss that :mod:`losskit.properties` verifies numerically.

    Attributes:
        convex: convex in the input for a fixed target.
        smoothness: ``"C0"`` (kinks), ``"C1"``, ``"C2"`` or ``"Cinf"`` in the input.
        robust: how the gradient grows with the residual: ``"none"`` (unbounded),
            ``"bounded_influence"`` or ``"redescending"``; ``None`` where a residual means nothing.
        homogeneity: degree k with loss(c·input, c·target) = c^k·loss(input, target)
            (the "units" column: 2 for MSE, 1 for MAE, 0 for MAPE); ``None`` if not homogeneous.
        minimizer: the statistic a constant prediction converges to ("mean", "median",
            "quantile", ...), for regression losses; ``None`` otherwise.
        units: the units of the loss value, in words.
        symmetric: loss(target + r) == loss(target - r); ``None`` where not applicable.
        zero_at_perfect: the minimum, 0, is reached when the prediction equals the target.
    """

    convex: bool | None = None
    smoothness: Smoothness | None = None
    robust: Robustness | None = None
    homogeneity: float | None = None
    minimizer: str | None = None
    units: str | None = None
    symmetric: bool | None = None
    zero_at_perfect: bool | None = None


@dataclass
class Sample:
    """Example arguments for a loss: ``fn(*args, **kwargs)``. ``grad`` lists the positions of
    the args that are differentiable inputs."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad: tuple[int, ...] = (0,)


Sampler = Callable[..., Sample]


@dataclass
class LossSpec:
    """Everything the library knows about one loss."""

    name: str
    fn: Callable[..., Tensor]
    family: str
    tasks: tuple[str, ...]
    input_kind: str
    target_kind: str
    properties: Properties
    formula: str
    references: tuple[str, ...]
    sample: Sampler
    aliases: tuple[str, ...] = ()
    peers: dict[str, str] = field(default_factory=dict)
    elementwise: bool = False
    skip: dict[str, str] = field(default_factory=dict)
    module: type[LossModule] | None = None

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    @property
    def options(self) -> dict[str, inspect.Parameter]:
        """Keyword-only parameters of the function (its options)."""
        return {
            n: p for n, p in self.signature.parameters.items() if p.kind is p.KEYWORD_ONLY
        }

    def accepts(self, option: str) -> bool:
        return option in self.signature.parameters

    @property
    def summary(self) -> str:
        doc = (inspect.getdoc(self.fn) or "").strip()
        first = doc.split("\n\n")[0].replace("\n", " ") if doc else ""
        return re.sub(r":\w+:`([^`]*)`", r"\1", first).replace("``", "")


_REGISTRY: dict[str, LossSpec] = {}
_ALIASES: dict[str, str] = {}

DOC_FRAGMENTS: dict[str, str] = {
    "reduction": (
        "reduction: ``\"none\"`` | ``\"mean\"`` | ``\"sum\"``. ``\"mean\"`` is the weighted mean "
        "Σ m·w·ℓ / Σ m·w over unmasked elements (the plain mean without weights or mask); "
        "``\"sum\"`` is divided by ``normalizer`` when given."
    ),
    "sample_weight": (
        "sample_weight: per-element weights (the shape of the unreduced loss) or per-sample "
        "weights ``(N,)``; default ``None``."
    ),
    "mask": "mask: bool tensor, True = keep (same shapes as ``sample_weight``); default ``None``.",
    "normalizer": (
        "normalizer: number or 0-d tensor dividing the sum (``reduction=\"sum\"`` only), e.g. the "
        "global count of elements across micro-batches or ranks."
    ),
    "empty": (
        "empty: ``\"zero\"`` (default; nothing left after masking gives 0 with a zero gradient) "
        "or ``\"nan\"``."
    ),
}


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def register(
    name: str,
    *,
    family: str,
    input_kind: str,
    target_kind: str,
    properties: Properties,
    formula: str,
    references: tuple[str, ...],
    sample: Sampler,
    tasks: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    peers: dict[str, str] | None = None,
    elementwise: bool = False,
    skip: dict[str, str] | None = None,
) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Declare a loss. Use as a decorator on its function; the Module links itself by
    subclassing :class:`~losskit._core.module.LossModule` with ``fn = staticmethod(the_fn)``.

    ``skip`` names contract checks that do not apply, each with the reason.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")

    def decorate(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        key = _normal(name)
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"loss {name!r} is registered twice")
        if fn.__doc__:
            fn.__doc__ = Template(fn.__doc__).safe_substitute(DOC_FRAGMENTS)
        spec = LossSpec(
            name=key,
            fn=fn,
            family=family,
            tasks=tuple(tasks) or (family,),
            input_kind=input_kind,
            target_kind=target_kind,
            properties=properties,
            formula=formula,
            references=tuple(references),
            sample=sample,
            aliases=tuple(_normal(a) for a in aliases),
            peers=dict(peers or {}),
            elementwise=elementwise,
            skip=dict(skip or {}),
        )
        _REGISTRY[key] = spec
        for alias in spec.aliases:
            if alias in _REGISTRY or alias in _ALIASES:
                raise ValueError(f"alias {alias!r} of {name!r} is taken")
            _ALIASES[alias] = key
        fn.__losskit_spec__ = spec  # type: ignore[attr-defined]
        return fn

    return decorate


def _ensure_loaded() -> None:
    import losskit.losses  # noqa: F401  (importing the families fills the registry)


def get_spec(name: str) -> LossSpec:
    """The :class:`LossSpec` registered under ``name`` or one of its aliases."""
    _ensure_loaded()
    key = _normal(name)
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        known = list(_REGISTRY) + list(_ALIASES)
        raise LossInputError(
            f"no loss named {name!r}.{did_you_mean(key, known)} "
            "See losskit.catalog() or `losskit list` for every name."
        )
    return _REGISTRY[key]


def get(name: str, **options: Any) -> Any:
    """The Module for ``name`` (or an alias) built with ``options``, e.g.
    ``losskit.get("huber", delta=0.5)``. Typos raise with a did-you-mean."""
    spec = get_spec(name)
    if spec.module is None:
        raise LossInputError(f"loss {spec.name!r} has no Module form")
    return spec.module(**options)


def catalog(family: str | None = None, task: str | None = None) -> list[LossSpec]:
    """Every registered loss, optionally filtered by family and task, sorted by family order
    then name."""
    _ensure_loaded()
    if family is not None and family not in FAMILIES:
        raise LossInputError(
            f"family={family!r} is unknown.{did_you_mean(family, FAMILIES)} "
            f"Families: {', '.join(FAMILIES)}."
        )
    specs = [
        s
        for s in _REGISTRY.values()
        if (family is None or s.family == family) and (task is None or task in s.tasks)
    ]
    return sorted(specs, key=lambda s: (FAMILIES.index(s.family), s.name))


def iter_names() -> Iterator[str]:
    _ensure_loaded()
    yield from _REGISTRY
    yield from _ALIASES


def unregister(name: str) -> None:
    """Remove a loss (used by tests that register throw-away losses)."""
    spec = _REGISTRY.pop(_normal(name))
    for alias in spec.aliases:
        _ALIASES.pop(alias, None)


def float_args(sample: Sample) -> list[int]:
    """Positions of the floating-point tensor args of a sample."""
    return [
        i for i, a in enumerate(sample.args) if isinstance(a, Tensor) and a.is_floating_point()
    ]


def cast_sample(sample: Sample, dtype: torch.dtype) -> Sample:
    """A copy of ``sample`` with every floating-point tensor (args and tensor kwargs) cast."""

    def cast(v: Any) -> Any:
        return v.to(dtype) if isinstance(v, Tensor) and v.is_floating_point() else v

    return Sample(
        args=tuple(cast(a) for a in sample.args),
        kwargs={k: cast(v) for k, v in sample.kwargs.items()},
        grad=sample.grad,
    )
