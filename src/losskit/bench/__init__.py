"""``losskit bench``: forward+backward time, memory saved for backward and peak memory of the
losses, side by side with PyTorch and the installed peer libraries on fixed shape presets.

The harness (:mod:`losskit.bench.harness`) times candidates interleaved in one process; the
presets are in :mod:`losskit.bench.cases`; :mod:`losskit.bench.runner` selects, runs and
formats them.
"""

from losskit.bench.harness import Row, compare, format_rows, machine, peak_rss_mib, saved_bytes

__all__ = ["Row", "compare", "format_rows", "machine", "peak_rss_mib", "saved_bytes"]
