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
        values = (*params, *(0.0,) * (6 - len(params)))
        return (ctypes.c_double * 6)(*values)

    def sum(self, x: Tensor, t: Tensor, params: tuple[float, ...]) -> float:
        return self._sum(x.data_ptr(), t.data_ptr(), x.numel(), self._params(params),
                         torch.get_num_threads())

    def value(self, x: Tensor, t: Tensor, params: tuple[float, ...]) -> Tensor:
        out = torch.empty_like(x)
        self._value(x.data_ptr(), t.data_ptr(), x.numel(), self._params(params), out.data_ptr(),
                    torch.get_num_threads())
        return out

    def grad(self, x: Tensor, t: Tensor, params: tuple[float, ...], g: Tensor | float) -> Tensor:
        """``g·dℓ/dx``, with ``g`` a tensor like ``x`` or a number."""
        out = torch.empty_like(x)
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
    """Softmax cross-entropy over the rows of a contiguous ``(rows, classes)`` block, one dtype."""

    def __init__(self, lib: ctypes.CDLL, suffix: str) -> None:
        self._forward = getattr(lib, f"lk_ce_forward_{suffix}_rows")
        self._forward.restype = ctypes.c_int64
        self._forward.argtypes = [_P, _I64, _I64, _P, _I64, _P, _P, ctypes.c_int]
        self._backward = getattr(lib, f"lk_ce_backward_{suffix}_rows")
        self._backward.restype = None
        self._backward.argtypes = [_P, _I64, _I64, _P, _I64, _P, _P, _P, ctypes.c_int]
        self._smooth_forward = getattr(lib, f"lk_ce_smooth_forward_{suffix}_rows")
        self._smooth_forward.restype = ctypes.c_int64
        self._smooth_forward.argtypes = [_P, _I64, _I64, _P, _I64, _P, _P, _P, _P, _P, ctypes.c_int]
        self._smooth_backward = getattr(lib, f"lk_ce_smooth_backward_{suffix}_rows")
        self._smooth_backward.restype = None
        self._smooth_backward.argtypes = [_P, _I64, _I64, _P, _I64, _P, _P, _P, _P, _P, _P, ctypes.c_int]
        self._planes_forward = getattr(lib, f"lk_ce_forward_{suffix}_planes")
        self._planes_forward.restype = ctypes.c_int64
        self._planes_forward.argtypes = [_P, _I64, _I64, _I64, _P, _I64, _P, _P, _P, _P, _P, ctypes.c_int]
        self._planes_backward = getattr(lib, f"lk_ce_backward_{suffix}_planes")
        self._planes_backward.restype = None
        self._planes_backward.argtypes = [_P, _I64, _I64, _I64, _P, _I64, _P, _P, _P, _P, _P, _P,
                                          ctypes.c_int]
        self._region_forward = getattr(lib, f"lk_region_forward_{suffix}_planes")
        self._region_forward.restype = None
        self._region_forward.argtypes = [_P, _I64, _I64, _I64, _P, _I64, _P, ctypes.c_int]
        self._region_backward = getattr(lib, f"lk_region_backward_{suffix}_planes")
        self._region_backward.restype = None
        self._region_backward.argtypes = [_P, _I64, _I64, _I64, _P, _I64, _P, _P, _P, ctypes.c_int]

    def forward(self, x: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor, int]:
        """``(nll, lse, bad)`` per row for contiguous int64 ``target``: the NLL is 0 where the
        target is ``ignore_index``; ``bad`` counts the other targets outside ``[0, classes)``
        (their NLL is NaN)."""
        rows, classes = x.shape
        nll = x.new_empty(rows)
        lse = x.new_empty(rows)
        bad = self._forward(x.data_ptr(), rows, classes, target.data_ptr(), ignore_index, nll.data_ptr(),
                            lse.data_ptr(), torch.get_num_threads())
        return nll, lse, int(bad)

    def smooth_forward(self, x: Tensor, target: Tensor, ignore_index: int,
                       weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """With label smoothing: ``(nll, lse, smooth, wfin, bad)``, ``smooth`` being
        Σ_c w_c·(−log p_c) and ``wfin`` Σ_c w_c over the classes with a finite logit (both 0 on
        ignored rows for ``smooth``); ``weight`` contiguous like ``x`` or ``None``."""
        rows, classes = x.shape
        nll, lse, smooth, wfin = (x.new_empty(rows) for _ in range(4))
        bad = self._smooth_forward(x.data_ptr(), rows, classes, target.data_ptr(), ignore_index,
                                   None if weight is None else weight.data_ptr(), nll.data_ptr(),
                                   lse.data_ptr(), smooth.data_ptr(), wfin.data_ptr(),
                                   torch.get_num_threads())
        return nll, lse, smooth, wfin, int(bad)

    def smooth_backward(self, x: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None,
                        lse: Tensor, on_p: Tensor, uniform: Tensor, at_target: Tensor,
                        out: Tensor) -> Tensor:
        """``out[i, c] = on_p[i]·p_ic − uniform[i]·w_c·[x_ic finite] − at_target[i]·[c = y_i]``,
        0 on ignored rows; ``out`` may be ``x``."""
        rows, classes = x.shape
        self._smooth_backward(x.data_ptr(), rows, classes, target.data_ptr(), ignore_index,
                              None if weight is None else weight.data_ptr(), lse.data_ptr(),
                              on_p.data_ptr(), uniform.data_ptr(), at_target.data_ptr(), out.data_ptr(),
                              torch.get_num_threads())
        return out

    def planes_forward(self, x: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None,
                       smoothing: bool) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, int]:
        """For ``x`` of shape ``(batch, classes, positions)`` and ``target`` ``(batch, positions)``:
        ``(nll, lse, smooth, wfin, bad)`` per position as :meth:`smooth_forward` (``smooth`` and
        ``wfin`` ``None`` without smoothing)."""
        batch, classes, positions = x.shape
        nll, lse = x.new_empty(batch, positions), x.new_empty(batch, positions)
        smooth = x.new_empty(batch, positions) if smoothing else None
        wfin = x.new_empty(batch, positions) if smoothing else None
        bad = self._planes_forward(x.data_ptr(), batch, classes, positions, target.data_ptr(), ignore_index,
                                   None if weight is None else weight.data_ptr(), nll.data_ptr(),
                                   lse.data_ptr(), None if smooth is None else smooth.data_ptr(),
                                   None if wfin is None else wfin.data_ptr(), torch.get_num_threads())
        return nll, lse, smooth, wfin, int(bad)

    def planes_backward(self, x: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None,
                        lse: Tensor, on_p: Tensor, uniform: Tensor | None, at_target: Tensor,
                        out: Tensor) -> Tensor:
        """:meth:`smooth_backward` for the ``(batch, classes, positions)`` layout (``uniform``
        ``None`` without smoothing)."""
        batch, classes, positions = x.shape
        self._planes_backward(x.data_ptr(), batch, classes, positions, target.data_ptr(), ignore_index,
                              None if weight is None else weight.data_ptr(), lse.data_ptr(), on_p.data_ptr(),
                              None if uniform is None else uniform.data_ptr(), at_target.data_ptr(),
                              out.data_ptr(), torch.get_num_threads())
        return out

    def region_forward(self, x: Tensor, columns: Tensor, ignored: int) -> tuple[Tensor, Tensor, Tensor]:
        """Softmax region sums of ``x`` ``(batch, classes, positions)`` against ``columns``
        ``(batch, positions)`` (the class, or ``ignored`` for a pixel left out): per (n, c) the
        intersection Σ p·[y = c], the mass Σ p over the kept pixels and the count Σ [y = c],
        accumulated in float64 and returned in ``x``'s dtype."""
        batch, classes, positions = x.shape
        acc = torch.zeros(3, batch, classes, dtype=torch.float64)
        self._region_forward(x.data_ptr(), batch, classes, positions, columns.data_ptr(), ignored,
                             acc.data_ptr(), torch.get_num_threads())
        inter, mass, count = acc.to(x.dtype).unbind(0)
        return inter, mass, count

    def region_backward(self, x: Tensor, columns: Tensor, ignored: int, g_inter: Tensor, g_mass: Tensor,
                        out: Tensor) -> Tensor:
        """The gradient in ``x`` of Σ g_inter·inter + Σ g_mass·mass, written into ``out``."""
        batch, classes, positions = x.shape
        self._region_backward(x.data_ptr(), batch, classes, positions, columns.data_ptr(), ignored,
                              g_inter.data_ptr(), g_mass.data_ptr(), out.data_ptr(), torch.get_num_threads())
        return out

    def backward(self, x: Tensor, target: Tensor, ignore_index: int, lse: Tensor, coef: Tensor,
                 out: Tensor) -> Tensor:
        """``out[i] = coef[i]·(softmax(x[i]) - onehot(target[i]))``, 0 on ignored rows; ``out``
        may be ``x``."""
        rows, classes = x.shape
        self._backward(x.data_ptr(), rows, classes, target.data_ptr(), ignore_index, lse.data_ptr(),
                       coef.data_ptr(), out.data_ptr(), torch.get_num_threads())
        return out


@functools.cache
def _softmax_rows(suffix: str) -> SoftmaxRows | None:
    lib = library()
    return None if lib is None else SoftmaxRows(lib, suffix)


def softmax_rows(x: Tensor) -> SoftmaxRows | None:
    """The row kernels for a contiguous CPU float32/float64 ``x`` of shape ``(rows, classes)`` or
    ``(batch, classes, positions)``, or ``None``."""
    suffix = _suffix(x) if x.ndim in (2, 3) else None
    return None if suffix is None else _softmax_rows(suffix)
