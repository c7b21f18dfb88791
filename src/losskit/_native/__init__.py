"""Native CPU kernels, compiled from ``elementwise.c`` on first use: the fused elementwise losses
(:class:`NativeKernel`) and the softmax cross-entropy over rows (:class:`SoftmaxRows`).

The C file is compiled once per machine with the system's C compiler (``$CC``, else ``cc``/``gcc``),
for ``-march=native``, with OpenMP and, where glibc provides it, the vectorised math library
(libmvec), and cached under ``$LOSSKIT_CACHE_DIR`` (default ``~/.cache/losskit``), keyed by the
source, the flags, the compiler and the CPU. The library links the OpenMP runtime PyTorch has
already loaded, so both share one thread pool. Without a compiler, or when the build fails, or with
``LOSSKIT_NATIVE=0`` in the environment, :func:`library` returns ``None`` and the losses run their
PyTorch kernels instead: the results are the same (to rounding), only slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["NativeKernel", "SoftmaxRows", "enabled", "kernel", "library", "softmax_rows", "status"]

SOURCE = Path(__file__).with_name("elementwise.c")

# Tried in order; the first that compiles and loads is kept.
_FLAG_SETS = (
    ("-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-fno-math-errno",
     "-fno-trapping-math", "-DLK_LIBMVEC", "-lmvec", "-lm"),
    ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-lm"),
    ("-O2", "-fopenmp", "-lm"),
    ("-O2", "-lm"),   # no OpenMP (e.g. Apple clang): the kernels run on one thread
)
_TYPES = {torch.float32: "f32", torch.float64: "f64"}
_SCALAR = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}

_log = logging.getLogger("losskit")
_state: dict[str, str] = {"status": "not built"}
_switch = {"on": True}


@contextlib.contextmanager
def enabled(on: bool) -> Iterator[None]:
    """Within the block, use the compiled kernels (``True``, where they exist) or not (``False``:
    the PyTorch kernels of the fused path run, e.g. to compare the two)."""
    before = _switch["on"]
    _switch["on"] = on
    try:
        yield
    finally:
        _switch["on"] = before


def _disabled() -> bool:
    return os.environ.get("LOSSKIT_NATIVE", "") in ("0", "false", "False", "off")


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cache_dir() -> Path:
    """``$LOSSKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/losskit`` or ``~/.cache/losskit``; a
    per-user folder of the system's temporary directory where that cannot be written."""
    root = Path(os.environ.get("LOSSKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "losskit"))
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"losskit-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _key(cc: str, flags: tuple[str, ...]) -> str:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    h = hashlib.sha256()
    for part in (SOURCE.read_text(), " ".join(flags), version, platform.machine(), _cpu_signature(),
                 torch.__version__):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _build(cc: str, flags: tuple[str, ...], target: Path) -> None:
    """Compile the float32 and float64 objects side by side, link them, and move the library into
    place atomically (another process may be building the same one)."""
    compile_flags = [f for f in flags if not f.startswith("-l")]
    link_flags = [f for f in flags if f.startswith("-l")]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        objects = [os.path.join(tmp, f"{suffix}.o") for suffix in ("f32", "f64")]
        commands = [[cc, *compile_flags, "-fPIC", "-c", str(SOURCE), "-o", objects[0]],
                    [cc, *compile_flags, "-DLK_DOUBLE", "-fPIC", "-c", str(SOURCE), "-o", objects[1]]]
        with ThreadPoolExecutor(2) as pool:
            for result in pool.map(lambda c: subprocess.run(c, capture_output=True, timeout=300), commands):
                if result.returncode != 0:
                    raise RuntimeError(result.stderr.decode(errors="replace")[-2000:])
        out = os.path.join(tmp, "lib.so")
        openmp = ["-fopenmp"] if "-fopenmp" in flags else []
        result = subprocess.run([cc, "-shared", *openmp, *objects, "-o", out, *link_flags],
                                capture_output=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.decode(errors="replace")[-2000:])
        os.replace(out, target)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first call; ``None`` where they cannot be had."""
    if _disabled():
        _state["status"] = "disabled (LOSSKIT_NATIVE=0)"
        return None
    cc = _compiler()
    if cc is None:
        _state["status"] = "no C compiler found"
        return None
    errors = []
    for flags in _FLAG_SETS:
        try:
            target = _cache_dir() / f"elementwise-{_key(cc, flags)}.so"
            if not target.exists():
                _log.info("losskit: compiling the fused losses' C kernels into %s (once per machine)",
                          target.parent)
                _build(cc, flags, target)
            lib = ctypes.CDLL(str(target))
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            errors.append(str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__)
            continue
        _state["status"] = f"compiled ({Path(cc).name} {' '.join(flags)})"
        return lib
    _state["status"] = "build failed: " + " | ".join(errors)
    return None


def status() -> str:
    """How the kernels stand: compiled (with which flags), disabled, or why not built."""
    return _state["status"]


_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_PRM = ctypes.POINTER(ctypes.c_double)


class NativeKernel:
    """The three entry points of one loss variant for one dtype."""

    def __init__(self, lib: ctypes.CDLL, name: str, suffix: str) -> None:
        self._sum = getattr(lib, f"lk_sum_{suffix}_{name}")
        self._sum.restype = ctypes.c_double
        self._sum.argtypes = [_P, _P, _I64, _PRM, ctypes.c_int]
        self._value = getattr(lib, f"lk_value_{suffix}_{name}")
        self._value.restype = None
        self._value.argtypes = [_P, _P, _I64, _PRM, _P, ctypes.c_int]
        self._grad = getattr(lib, f"lk_grad_{suffix}_{name}")
        self._grad.restype = None
        self._grad.argtypes = [_P, _P, _I64, _PRM, _P, ctypes.c_double, _P, ctypes.c_int]

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _params(params: tuple[float, ...]) -> ctypes.Array[ctypes.c_double]:
        # read-only on the C side, so one array per option set serves every call
        values = (*params, *(0.0,) * (7 - len(params)))
        return (ctypes.c_double * 7)(*values)

    def sum(self, x: Tensor, t: Tensor, params: tuple[float, ...]) -> float:
        return self._sum(x.data_ptr(), t.data_ptr(), x.numel(), self._params(params),
                         torch.get_num_threads())

    def sum_into(self, out: Tensor, x: Tensor, t: Tensor, params: tuple[float, ...], scale: float) -> Tensor:
        """``out`` (a 0-d tensor of ``x``'s dtype, allocated before the call) ← ``scale``·the sum.
        Stored through ctypes: a torch op right after a pass over megabytes of inputs runs with
        cold caches and costs tens of microseconds."""
        total = self.sum(x, t, params) * scale
        _SCALAR[out.dtype].from_address(out.data_ptr()).value = total
        return out

    def value(self, x: Tensor, t: Tensor, params: tuple[float, ...], out: Tensor | None = None) -> Tensor:
        """The per-element losses, into ``out`` (contiguous, ``x.numel()`` elements) if given."""
        out = torch.empty_like(x) if out is None else out
        self._value(x.data_ptr(), t.data_ptr(), x.numel(), self._params(params), out.data_ptr(),
                    torch.get_num_threads())
        return out

    def grad(self, x: Tensor, t: Tensor, params: tuple[float, ...], g: Tensor | float,
             out: Tensor | None = None) -> Tensor:
        """``g·dℓ/dx``, with ``g`` a tensor like ``x`` or a number, into ``out`` if given."""
        out = torch.empty_like(x) if out is None else out
        gp, gs = (g.data_ptr(), 0.0) if isinstance(g, Tensor) else (None, float(g))
        self._grad(x.data_ptr(), t.data_ptr(), x.numel(), self._params(params), gp, gs,
                   out.data_ptr(), torch.get_num_threads())
        return out


def _suffix(*tensors: Tensor) -> str | None:
    """``"f32"``/``"f64"`` when the kernels are on and the tensors are contiguous CPU tensors of
    one of those dtypes, else ``None``."""
    first = tensors[0]
    suffix = _TYPES.get(first.dtype)
    if not _switch["on"] or suffix is None or first.device.type != "cpu":
        return None
    for t in tensors:
        if t.dtype != first.dtype or t.device != first.device or not t.is_contiguous():
            return None
    return suffix


@functools.cache
def _kernel(name: str, suffix: str) -> NativeKernel | None:
    lib = library()
    return None if lib is None else NativeKernel(lib, name, suffix)


def kernel(name: str, *tensors: Tensor) -> NativeKernel | None:
    """The native kernel ``name`` for these tensors, or ``None`` when it does not apply: not all
    contiguous CPU tensors of one dtype among float32/float64, or no compiled library."""
    suffix = _suffix(*tensors)
    return None if suffix is None else _kernel(name, suffix)


class SoftmaxRows:
    """Softmax over the classes of a contiguous block of logits, one dtype: the cross-entropy of
    ``(rows, classes)`` or ``(batch, classes, positions)`` logits against class indices, and the
    multiclass region sums (Dice and relatives) of the latter."""

    def __init__(self, lib: ctypes.CDLL, suffix: str) -> None:
        def entry(name: str, restype: Any, *argtypes: Any) -> Any:
            fn = getattr(lib, f"lk_{name}")
            fn.restype, fn.argtypes = restype, [*argtypes, ctypes.c_int]
            return fn

        p, i64 = _P, _I64
        self._forward = {
            2: entry(f"ce_forward_{suffix}_rows", i64, p, i64, i64, p, i64, p, p, p, p, p),
            3: entry(f"ce_forward_{suffix}_planes", i64, p, i64, i64, i64, p, i64, p, p, p, p, p)}
        self._backward = {
            2: entry(f"ce_backward_{suffix}_rows", None, p, i64, i64, p, i64, p, p, p, p, p, p),
            3: entry(f"ce_backward_{suffix}_planes", None, p, i64, i64, i64, p, i64, p, p, p, p, p, p)}
        self._soft_forward = entry(f"soft_ce_forward_{suffix}_rows", None, p, i64, i64, p, p,
                                   ctypes.c_double, p, p, p)
        self._soft_backward = entry(f"soft_ce_backward_{suffix}_rows", None, p, i64, i64, p, p,
                                    ctypes.c_double, p, p, p, p)
        self._region_forward = entry(f"region_forward_{suffix}_planes", None, p, i64, i64, i64, p, i64, p, p)
        self._region_backward = entry(f"region_backward_{suffix}_planes", None, p, i64, i64, i64, p, i64,
                                      p, p, p, p)

    def forward(self, x: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None,
                smoothing: bool) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, int]:
        """Per position (``target``'s shape, contiguous int64): ``(nll, lse, smooth, wfin, bad)``.
        The NLL is 0 where the target is ``ignore_index``; ``bad`` counts the other targets
        outside ``[0, classes)`` (their NLL is NaN). With ``smoothing``, ``smooth`` is
        Σ_c w_c·(−log p_c) (0 on ignored positions) and ``wfin`` Σ_c w_c over the classes with a
        finite logit, ``weight`` (contiguous, ``x``'s dtype) or ones; else both are ``None``."""
        out = [x.new_empty(target.shape) for _ in range(4 if smoothing else 2)]
        nll, lse, smooth, wfin = (*out, None, None) if not smoothing else out
        bad = self._forward[x.ndim](x.data_ptr(), *x.shape, target.data_ptr(), ignore_index,
                                    _ptr(weight), nll.data_ptr(), lse.data_ptr(), _ptr(smooth),
                                    _ptr(wfin), torch.get_num_threads())
        return nll, lse, smooth, wfin, int(bad)

    def backward(self, x: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None,
                 lse: Tensor, on_p: Tensor, uniform: Tensor | None, at_target: Tensor,
                 out: Tensor) -> Tensor:
        """``out = on_p·p − uniform·w_c·[x finite] − at_target·[c = y]`` per position (``uniform``
        ``None`` without smoothing), 0 on ignored positions; ``out`` may be ``x``. The per-position
        factors are contiguous like ``lse``."""
        self._backward[x.ndim](x.data_ptr(), *x.shape, target.data_ptr(), ignore_index, _ptr(weight),
                               lse.data_ptr(), on_p.data_ptr(), _ptr(uniform), at_target.data_ptr(),
                               out.data_ptr(), torch.get_num_threads())
        return out

    def soft_forward(self, x: Tensor, target: Tensor, weight: Tensor | None,
                     smoothing: float) -> tuple[Tensor, Tensor, Tensor]:
        """Cross-entropy of ``(rows, classes)`` logits against probabilities ``target`` (same
        shape and dtype, contiguous), smoothed and weighted per class: per row ``(loss, lse,
        mass)``, ``mass`` being Σ_c w_c·t_c over the classes with a finite logit."""
        loss, lse, mass = (x.new_empty(x.shape[:1]) for _ in range(3))
        self._soft_forward(x.data_ptr(), *x.shape, target.data_ptr(), _ptr(weight), smoothing,
                           loss.data_ptr(), lse.data_ptr(), mass.data_ptr(), torch.get_num_threads())
        return loss, lse, mass

    def soft_backward(self, x: Tensor, target: Tensor, weight: Tensor | None, smoothing: float,
                      lse: Tensor, mass: Tensor, g: Tensor, out: Tensor) -> Tensor:
        """``out = g·(mass·softmax(x) − w·t)`` per row (0 at a −inf logit); ``g`` per row."""
        self._soft_backward(x.data_ptr(), *x.shape, target.data_ptr(), _ptr(weight), smoothing,
                            lse.data_ptr(), mass.data_ptr(), g.data_ptr(), out.data_ptr(),
                            torch.get_num_threads())
        return out

    def region_forward(self, x: Tensor, target: Tensor, ignored: int) -> tuple[Tensor, Tensor, Tensor]:
        """Softmax region sums of ``x`` ``(batch, classes, positions)`` against ``target``: int64
        columns ``(batch, positions)`` (the class, or ``ignored`` for a pixel left out), or dense
        labels of ``x``'s shape and dtype (one-hot or soft; ``ignored`` unused). Per (n, c) the
        intersection Σ p·[y = c] (Σ p·t), the mass Σ p over the kept pixels and the count
        Σ [y = c] (Σ t), accumulated in float64 and returned in ``x``'s dtype. ``target``
        contiguous."""
        batch, classes, positions = x.shape
        columns, dense = _region_target(target)
        acc = torch.zeros(3, batch, classes, dtype=torch.float64)
        self._region_forward(x.data_ptr(), batch, classes, positions, columns, ignored, dense,
                             acc.data_ptr(), torch.get_num_threads())
        inter, mass, count = acc.to(x.dtype).unbind(0)
        return inter, mass, count

    def region_backward(self, x: Tensor, target: Tensor, ignored: int, g_inter: Tensor, g_mass: Tensor,
                        out: Tensor) -> Tensor:
        """The gradient in ``x`` of Σ g_inter·inter + Σ g_mass·mass, written into ``out``."""
        batch, classes, positions = x.shape
        columns, dense = _region_target(target)
        self._region_backward(x.data_ptr(), batch, classes, positions, columns, ignored, dense,
                              g_inter.data_ptr(), g_mass.data_ptr(), out.data_ptr(), torch.get_num_threads())
        return out


def _region_target(target: Tensor) -> tuple[int | None, int | None]:
    """The region kernels' (columns, dense) pointers: one of them, by the target's dtype."""
    return (None, target.data_ptr()) if target.is_floating_point() else (target.data_ptr(), None)


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


@functools.cache
def _softmax_rows(suffix: str) -> SoftmaxRows | None:
    lib = library()
    return None if lib is None else SoftmaxRows(lib, suffix)


def softmax_rows(x: Tensor) -> SoftmaxRows | None:
    """The row kernels for a contiguous CPU float32/float64 ``x`` of shape ``(rows, classes)`` or
    ``(batch, classes, positions)``, or ``None``."""
    suffix = _suffix(x) if x.ndim in (2, 3) else None
    return None if suffix is None else _softmax_rows(suffix)
