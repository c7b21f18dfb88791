"""A static, offline HTML reference generated from the registry: ``losskit atlas --out DIR``.

``build(out)`` writes ``index.html`` (every loss with its family, tasks and verified property
row), one page per loss (formula rendered from the registry's LaTeX without any network, the
property row with the probes' marks, an inline SVG of the loss and its gradient, a usage
snippet, references and the peers' equivalent names) and ``style.css``. No scripts, no CDN.
"""

from __future__ import annotations

from losskit.atlas.builder import build
from losskit.atlas.latex import latex_to_html

__all__ = ["build", "latex_to_html"]
