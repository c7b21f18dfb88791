"""The atlas builds offline for every loss; a headless browser renders it without console
errors and with a non-empty plot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import losskit
from losskit.atlas import build, latex_to_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def atlas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("atlas")
    # every page; the property rows of a few (tests/test_properties.py probes them all)
    build(out, probes=["mse", "l1", "huber"])
    return out


def test_builds_for_every_loss_offline(atlas: Path) -> None:
    names = [s.name for s in losskit.catalog()]
    index = (atlas / "index.html").read_text()
    for name in names:
        page = atlas / "loss" / f"{name}.html"
        assert page.exists(), name
        assert f'href="loss/{name}.html"' in index
    for f in [atlas / "index.html", *(atlas / "loss").glob("*.html")]:
        text = f.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), f"network link in {f.name}"
        assert "<script" not in text
    mse = (atlas / "loss" / "mse.html").read_text()
    assert "<path" in mse and "Formula" in mse and "torch.nn.functional.mse_loss" in mse
    assert "✓" in mse  # verified property cells
    assert "not probed" in index


def test_latex_renderer() -> None:
    h = latex_to_html(r"\tfrac12 (\hat y - y)^2 + \delta\,\sqrt{x}")
    assert '<span class="frac">' in h and "<sup>" in h and "δ" in h and "√" in h
    assert "\\" not in h


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_headless_browser(atlas: Path, tmp_path: Path) -> None:
    shots = Path(os.environ.get("LOSSKIT_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    for page, shot in ((atlas / "index.html", "atlas-index.png"), (atlas / "loss" / "huber.html",
                                                                    "atlas-huber.png")):
        dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "CONSOLE" not in dom.stderr and "Uncaught" not in dom.stderr, dom.stderr[-2000:]
        assert "<table" in dom.stdout
        if "huber" in page.name:
            svg = dom.stdout[dom.stdout.index("<svg"):dom.stdout.index("</svg>")]
            assert svg.count("<path") >= 2 and re.search(r'd="M [0-9.]+,[0-9.]+ L', svg)
        subprocess.run([*flags, f"--screenshot={shots / shot}", "--window-size=1200,900", page.as_uri()],
                       capture_output=True, timeout=120)
        assert (shots / shot).stat().st_size > 1000
