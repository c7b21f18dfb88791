"""The loss lab: the estimator claim, reproducibility, the CLI end to end, bad input, atomic
output, and the report in a headless browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import losskit
from losskit.cli import main
from losskit.lab import compare
from losskit.lab import metrics as M
from losskit.lab.study import claim_estimator

pytest.importorskip("matplotlib")

FAST = ["--epochs", "40", "--folds", "3", "--quiet"]


def _registered(*names: str) -> bool:
    try:
        for n in names:
            losskit.get_spec(n)
    except losskit.LossInputError:
        return False
    return True


def _csv(path: Path, task: str, rows: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    color = rng.choice(["red", "green", "blue"], size=rows)
    if task == "regression":
        y = [f"{2 * a - b + rng.normal(0, 0.1):.4f}" for a, b in zip(x1, x2)]
    elif task == "binary":
        y = ["yes" if a + b > 0 else "no" for a, b in zip(x1, x2)]
    else:
        y = [str(int(a > 0) + int(b > 0)) for a, b in zip(x1, x2)]
    lines = ["x1,x2,color,y"] + [f"{a:.4f},{b:.4f},{c},{t}" for a, b, c, t in zip(x1, x2, color, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_claim_2_holds_by_construction():
    claim = claim_estimator(seeds=1)
    assert claim.held, claim.verdict
    assert max(max(v) for v in claim.details["relative_error"].values()) < 0.02


def test_metrics_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.2).astype(int)
    score = rng.random(200) + 0.3 * y
    np.testing.assert_allclose(M.average_precision(score, y), metrics.average_precision_score(y, score))
    np.testing.assert_allclose(M.f1_score(score, y, 0.5), metrics.f1_score(y, score >= 0.5))
    prob = rng.dirichlet(np.ones(4), size=100)
    labels = rng.integers(0, 4, size=100)
    np.testing.assert_allclose(M.nll(prob, labels), metrics.log_loss(labels, prob, labels=range(4)))


def test_same_seed_gives_the_same_numbers():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.standard_t(2, size=60)
    a = compare(X, y, task="regression", losses=["mse", "huber"], folds=3, epochs=40)
    b = compare(X, y, task="regression", losses=["mse", "huber"], folds=3, epochs=40)
    assert a.metrics == b.metrics
    rec = a.recommendation()
    assert rec["best"] in ("mse", "huber") and set(rec["versus"]) == {"mse", "huber"} - {rec["best"]}


@pytest.mark.parametrize(("task", "losses"), [
    ("regression", "mse,mae,huber"),
    ("binary", "bce,bce_pos_weight"),
    ("multiclass", "cross_entropy,label_smoothing_0.1"),
])
def test_cli_end_to_end_on_a_csv(tmp_path, capsys, task, losses):
    needed = {"binary": ("binary_cross_entropy_with_logits",), "multiclass": ("cross_entropy",)}
    if not _registered(*needed.get(task, ())):
        pytest.skip("the classification losses are not registered")
    data = _csv(tmp_path / "data.csv", task)
    out = tmp_path / "report"
    code = main(["lab", str(data), "--target", "y", "--task", task, "--losses", losses,
                 "--out", str(out), *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    assert "recommended loss:" in printed and "report:" in printed
    payload = json.loads((out / "results.json").read_text())
    result = payload["result"]
    assert result["task"] == task and result["losses"] == losses.split(",")
    assert all(len(v) == 3 for m in result["metrics"].values() for v in m.values())  # 3 folds
    assert payload["features"] == ["x1", "x2", "color=blue", "color=green", "color=red"]
    page = (out / "index.html").read_text()
    assert "Recommended:" in page and "Machine and versions" in page and "data:image/png;base64" in page


BAD = [
    (["missing.csv", "--target", "y", "--task", "regression"], "no such file"),
    (["{csv}", "--target", "colr", "--task", "regression"], "Did you mean 'color'"),
    (["{csv_text_target}", "--target", "y", "--task", "regression"], "not numeric"),
    (["{csv_one_class}", "--target", "y", "--task", "binary"], "single class"),
    (["{csv}", "--target", "y", "--task", "regression", "--folds", "40"], "too few for 40 folds"),
    (["{csv_nan}", "--target", "y", "--task", "regression"], "--dropna"),
    (["{csv}", "--target", "y", "--task", "regression", "--losses", "mse,hubber"], "Did you mean"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[b[1] for b in BAD])
def test_bad_input_gives_a_message_and_exit_code_2(tmp_path, capsys, argv, message):
    csv = _csv(tmp_path / "ok.csv", "regression")
    text_target = tmp_path / "text.csv"
    text_target.write_text("a,y\n1,cat\n2,dog\n3,cat\n")
    one_class = tmp_path / "one.csv"
    one_class.write_text("a,y\n" + "".join(f"{i},same\n" for i in range(20)))
    nan = tmp_path / "nan.csv"
    lines = csv.read_text().splitlines()
    lines[2] = "nan" + lines[2][lines[2].index(","):]
    nan.write_text("\n".join(lines) + "\n")
    files = {"csv": csv, "csv_text_target": text_target, "csv_one_class": one_class, "csv_nan": nan}
    argv = [a.format(**files) if "{" in a else a for a in argv]
    out = tmp_path / "never"
    code = main(["lab", *FAST, *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_dropna_drops_rows_with_missing_values(tmp_path):
    csv = _csv(tmp_path / "ok.csv", "regression")
    lines = csv.read_text().splitlines()
    lines[3] = "nan" + lines[3][lines[3].index(","):]
    csv.write_text("\n".join(lines) + "\n")
    assert main(["lab", str(csv), "--target", "y", "--task", "regression", "--losses", "mse",
                 "--dropna", "--out", str(tmp_path / "r"), *FAST]) == 0
    assert json.loads((tmp_path / "r" / "results.json").read_text())["result"]["settings"]["rows"] == 59


def test_no_traceback_from_the_installed_command(tmp_path):
    exe = Path(sys.executable).with_name("losskit")
    if not exe.exists():
        pytest.skip("console script not installed")
    proc = subprocess.run([str(exe), "lab", "nope.csv", "--target", "y", "--task", "binary"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_existing_report_is_never_overwritten_without_force(tmp_path, capsys):
    csv = _csv(tmp_path / "ok.csv", "regression")
    out = tmp_path / "report"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    args = ["lab", str(csv), "--target", "y", "--task", "regression", "--losses", "mse", "--out", str(out)]
    assert main([*args, *FAST]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep me"
    assert main([*args, *FAST, "--force"]) == 0
    assert (out / "results.json").exists() and not (out / "mine.txt").exists()


def test_an_interrupted_run_leaves_no_partial_report(tmp_path, monkeypatch):
    from losskit.lab import report

    csv = _csv(tmp_path / "ok.csv", "regression")
    out = tmp_path / "report"
    real = Path.write_text

    def crash(self, text, *a, **k):
        if self.name == "results.json":
            raise KeyboardInterrupt
        return real(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", crash)
    code = main(["lab", str(csv), "--target", "y", "--task", "regression", "--losses", "mse",
                 "--out", str(out), *FAST])
    assert code == 130
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ok.csv"]  # no temporary folder left behind
    assert report is not None


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_opens_in_headless_chromium_without_console_errors(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed")
    csv = _csv(tmp_path / "ok.csv", "regression")
    out = tmp_path / "report"
    assert main(["lab", str(csv), "--target", "y", "--task", "regression", "--losses", "mse,mae",
                 "--out", str(out), *FAST]) == 0
    shot = Path(os.environ.get("LOSSKIT_ARTIFACTS", tmp_path)) / "lab-report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1000,1400", f"--screenshot={shot}", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == [], console
    assert shot.exists() and shot.stat().st_size > 10_000
