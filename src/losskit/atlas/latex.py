"""A tiny offline LaTeX → HTML renderer for the constructs the registry's formulas use
(fractions, sub/superscripts, roots, Greek letters, operators, ``\\text``); anything it does not
know is shown as is, and the page always carries the LaTeX source too."""

from __future__ import annotations

import html
import re

__all__ = ["latex_to_html"]

_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "ell": "ℓ",
    "sum": "∑", "prod": "∏", "int": "∫", "infty": "∞", "cdot": "·", "times": "×", "le": "≤",
    "leq": "≤", "ge": "≥", "geq": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "in": "∈",
    "to": "→", "rightarrow": "→", "mid": "|", "|": "‖", "lVert": "‖", "rVert": "‖", "Vert": "‖",
    "partial": "∂", "nabla": "∇", "pm": "±", "ldots": "…", "dots": "…", "cdots": "⋯",
    "langle": "⟨", "rangle": "⟩", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉",
    "quad": "\u2003", "qquad": "\u2003\u2003", ",": "\u2009", ";": "\u2005", "!": "", " ": " ",
    "{": "{", "}": "}", "%": "%", "_": "_", "&": "&", "#": "#",
    "log": "log", "exp": "exp", "max": "max", "min": "min", "sin": "sin", "cos": "cos",
    "tanh": "tanh", "cosh": "cosh", "sinh": "sinh", "arg": "arg", "sup": "sup", "inf": "inf",
    "det": "det", "lim": "lim", "sign": "sign", "mathbb": "", "left": "", "right": "",
    "big": "", "Big": "", "bigg": "", "Bigg": "", "displaystyle": "", "limits": "",
}
_ACCENTS = {"hat": "\u0302", "bar": "\u0304", "tilde": "\u0303", "vec": "\u20d7", "dot": "\u0307"}


def _group(s: str, i: int) -> tuple[str, int]:
    """The argument starting at ``s[i]``: a braced group or one token."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        depth, j = 0, i
        while j < len(s):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return s[i + 1:j], j + 1
            j += 1
        return s[i + 1:], len(s)
    if s[i] == "\\":
        m = re.match(r"\\([A-Za-z]+|.)", s[i:])
        assert m is not None
        return m.group(0), i + len(m.group(0))
    return s[i], i + 1


def _render(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            assert m is not None
            name = m.group(1)
            i += len(m.group(0))
            if name in ("frac", "tfrac", "dfrac"):
                a, i = _group(s, i)
                b, i = _group(s, i)
                out.append(f'<span class="frac"><span class="num">{_render(a)}</span>'
                           f'<span class="den">{_render(b)}</span></span>')
            elif name == "sqrt":
                a, i = _group(s, i)
                out.append(f'√<span class="sqrt">{_render(a)}</span>')
            elif name in ("text", "mathrm", "operatorname", "textrm", "mathit", "mathbf", "boldsymbol",
                          "mathcal", "mathbb"):
                a, i = _group(s, i)
                body = _render(a) if name not in ("text", "textrm") else html.escape(a)
                if name == "mathbb":
                    body = {"E": "𝔼", "R": "ℝ", "1": "𝟙", "N": "ℕ", "P": "ℙ"}.get(a, body)
                out.append(f'<span class="{name}">{body}</span>')
            elif name in _ACCENTS:
                a, i = _group(s, i)
                out.append(_render(a) + _ACCENTS[name])
            elif name in _SYMBOLS:
                sym = _SYMBOLS[name]
                out.append(f'<span class="op">{sym}</span>' if sym.isalpha() and len(sym) > 1 else sym)
            else:
                out.append(html.escape(m.group(0)))
        elif c in "^_":
            a, i = _group(s, i + 1)
            tag = "sup" if c == "^" else "sub"
            out.append(f"<{tag}>{_render(a)}</{tag}>")
        elif c in "{}":
            i += 1
        elif c.isalpha():
            out.append(f"<i>{c}</i>")
            i += 1
        else:
            out.append(html.escape(c))
            i += 1
    return "".join(out)


def latex_to_html(tex: str) -> str:
    """HTML for a LaTeX formula (common constructs; unknown commands are shown verbatim)."""
    return f'<span class="math">{_render(tex)}</span>'
