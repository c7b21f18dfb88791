"""Side-by-side timing of forward+backward for the scripts in ``benchmarks/``.

The harness lives in the package (:mod:`losskit.bench.harness`) so that the installed
``losskit bench`` command works without this directory; this module re-exports it unchanged.
"""

from __future__ import annotations

from losskit.bench.harness import (
    Row,
    compare,
    cuda_peak_mib,
    format_rows,
    live_peak_mib,
    machine,
    peak_env,
    peak_rss_mib,
    saved_bytes,
)

__all__ = ["Row", "compare", "cuda_peak_mib", "format_rows", "live_peak_mib", "machine", "peak_env",
           "peak_rss_mib", "saved_bytes"]
