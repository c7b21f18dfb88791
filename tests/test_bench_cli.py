"""``losskit bench``: parsing, selection, JSON rows, missing peers, GPU rows, the harness.

Nothing here asserts a timing: the figures are recorded in docs/benchmarks.md, not tested.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from losskit.bench import cases as bench_cases
from losskit.bench import harness
from losskit.bench.cases import CASES, Built, Case, Goal, NotTimed
from losskit.bench.runner import NO_CUDA, _goal, cpu_peaks, families_of, select
from losskit.cli import build_parser, main

ROW_FIELDS = {"case", "implementation", "median_ms", "ratio", "saved_mib", "peak_mib", "machine", "status"}


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch):
    """Tiny shapes: one intra-op thread (and in the peak process) keeps a loaded machine from
    stretching the wall time; nothing here is a timing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main(["bench", "--quick", "--no-peak", "--repeats", "1", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_parser_takes_every_option() -> None:
    args = build_parser().parse_args(
        ["bench", "segmentation", "ntxent", "--device", "cpu", "--json", "--repeats", "3", "--quick",
         "--no-peak", "--threads", "1"])
    assert args.names == ["segmentation", "ntxent"]
    assert (args.device, args.json, args.repeats, args.quick, args.no_peak, args.threads) == (
        "cpu", True, 3, True, True, 1)
    assert args.run.__module__ == "losskit.commands.bench"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--device", "tpu"])


def test_every_preset_has_registered_losses_and_unique_ids() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    for c in CASES:
        assert families_of(c)  # get_spec raises for an unregistered name
    ids = " ".join(c.id for c in CASES)
    for shape in ("131072x80", "2048x32768", "N=4096 D=1024 V=32768", "B=256", "B=1024",
                  "8x4x128x128", "2x4x64x64x64", "8192x131072 bf16", "N=8192 D=4096 V=131072 bf16"):
        assert shape in ids, shape
    losses = {n for c in CASES for n in c.losses}
    for name in ("log_cosh", "pseudo_huber", "general_robust", "quantile", "hinge", "squared_hinge",
                 "asymmetric", "gan_discriminator", "gan_generator", "sigmoid_focal", "poly1_cross_entropy"):
        assert name in losses, name


def test_select_by_family_by_name_and_by_alias() -> None:
    seg = select(["segmentation"])
    assert seg and all("segmentation" in families_of(c) for c in seg)
    assert {c.id for c in seg} == {c.id for c in CASES if "dice" in c.losses}
    assert [c.id for c in select(["ntxent"])] == [c.id for c in select(["nt_xent"])] == [
        "nt_xent B=256 D=128", "nt_xent memory B=1024 D=128"]
    focal = [c.id for c in select(["sigmoid_focal_loss"])]
    assert focal == ["sigmoid_focal 131072x80", "sigmoid_focal 1e6", "GPU sigmoid_focal 131072x80"]
    both = select(["dice", "batch-hard"])
    assert {c.id for c in both} == {c.id for c in seg} | {c.id for c in select(["batch_hard_triplet"])}
    assert select([]) == list(CASES)


def test_unknown_names_give_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sigmoid_focl"]) == 2
    assert "Did you mean 'sigmoid_focal'?" in capsys.readouterr().err
    assert main(["bench", "segmentaton"]) == 2
    assert "Did you mean 'segmentation'?" in capsys.readouterr().err
    assert main(["bench", "ctc"]) == 2  # registered, but no preset
    assert "no benchmark preset" in capsys.readouterr().err
    assert main(["bench", "--repeats", "0", "mse"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err


def test_list_prints_the_selected_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list", "metric"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert {line.split("  [")[0] for line in out} == {c.id for c in select(["metric"])}


def test_json_rows_have_the_documented_fields(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cuda(monkeypatch)
    rows = _json(capsys, "log_cosh", "metric")
    assert {r["case"] for r in rows} == {"log_cosh 1e6"} | {c.id for c in select(["metric"])}
    for r in rows:
        assert ROW_FIELDS <= set(r)
        assert r["machine"] == harness.machine("cpu")
    lc = {r["implementation"]: r for r in rows if r["case"] == "log_cosh 1e6"}
    assert lc["F.mse_loss (yardstick)"]["ratio"] == 1.0
    mine = lc["losskit log_cosh"]
    assert mine["median_ms"] > 0 and mine["saved_mib"] >= 0 and mine["peak_mib"] is None
    assert mine["ratio"] == pytest.approx(mine["median_ms"] / lc["F.mse_loss (yardstick)"]["median_ms"])
    assert mine["goals"][0]["goal"] == "time ≤ 1.5× mse_loss"
    assert mine["baseline"] == "F.mse_loss (yardstick)"
    hard = [r for r in rows if r["case"] == "batch_hard_triplet B=256 D=128"]
    assert [r["implementation"] for r in hard] == ["PML TripletMarginLoss + BatchHardMiner",
                                                   "losskit batch_hard_triplet_loss"]


def test_missing_peers_are_rows_not_errors(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in [m for m in sys.modules if m.split(".")[0] in ("pytorch_metric_learning", "monai")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "pytorch_metric_learning", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "monai", None)
    rows = _json(capsys, "batch_hard_triplet", "dice")
    by = {(r["case"], r["implementation"]): r for r in rows}
    pml = by[("batch_hard_triplet B=256 D=128", "PML TripletMarginLoss + BatchHardMiner")]
    assert pml["status"] == "not installed: pytorch-metric-learning" and pml["median_ms"] is None
    mon = by[("dice multiclass 8x4x128x128", "MONAI DiceLoss")]
    assert mon["status"] == "not installed: monai"
    mine = by[("dice multiclass 8x4x128x128", "losskit dice_loss")]
    assert mine["median_ms"] > 0
    goals = {g["goal"]: g for g in mine["goals"]}
    assert goals["time ≤ 1.0× MONAI"]["met"] is None and goals["time ≤ 1.0× kornia"]["met"] in (True, False)
    kornia_3d = next(r for r in rows
                     if r["case"].endswith("64x64x64") and r["implementation"].startswith("kornia"))
    assert kornia_3d["median_ms"] is None and kornia_3d["status"].startswith("not applicable")
    # torchvision is optional too: whichever way, the focal case runs
    focal = _json(capsys, "sigmoid_focal")
    tv = next(r for r in focal if r["implementation"] == "torchvision.ops.sigmoid_focal_loss")
    assert tv["median_ms"] is not None or tv["status"] == "not installed: torchvision"


def test_gpu_rows_say_not_measured_without_cuda(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cuda(monkeypatch)
    assert main(["bench", "--quick", "--no-peak", "--repeats", "1", "cross_entropy"]) == 0
    out = capsys.readouterr().out
    gpu = [line for line in out.splitlines() if line.startswith("| GPU cross_entropy")]
    assert gpu and all(NO_CUDA in line for line in gpu)
    assert "| cross_entropy 2048x32768 | losskit cross_entropy |" in out
    assert out.startswith("Machine: ")
    assert main(["bench", "--device", "cuda", "cross_entropy"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_peak_memory_from_a_fresh_process() -> None:
    peaks = cpu_peaks(select(["log_cosh"]), quick=True)["log_cosh 1e6"]
    assert set(peaks) == {"F.mse_loss (yardstick)", "losskit log_cosh"}
    for value, status in peaks.values():
        assert status == "ok" and value is not None and value >= 0


def test_an_allocation_refused_by_the_cap_is_reported_as_asked() -> None:
    from losskit.bench.peak import _capped

    x = torch.zeros(3)
    value, status = _capped(NotTimed(lambda t: torch.empty(2**36, dtype=torch.uint8).sum() + t.sum(),
                                     cap_gib=1.0), [x], (0,))
    assert value == pytest.approx(2**36 / 2**20)
    assert status.startswith("cannot run: asks for 64.0 GiB")


def test_goals_compare_the_right_rows() -> None:
    c = Case("c", ("mse",), lambda q, d: Built({}, ()))
    rows = {"a": harness.Row("c", "a", 2.0, 1.0, 3.0, 10.0), "b": harness.Row("c", "b", 4.0, 2.0, 0.0, 40.0),
            "gone": harness.Row("c", "gone", None, None, None, status="not installed: x")}
    assert _goal(c, Goal("t", "a", "time", 1.0, "b"), rows, 1.0).value == 0.5
    assert _goal(c, Goal("t", "b", "time", 1.0, "a"), rows, 1.0).met is False
    assert _goal(c, Goal("p", "a", "peak", 0.25, "b"), rows, 1.0).met is True
    assert _goal(c, Goal("s", "a", "saved", 1.0, unit="input0"), rows, 3.0).met is True
    assert _goal(c, Goal("s", "a", "saved", 1.0, unit="input0"), rows, 2.0).met is False
    assert _goal(c, Goal("ms", "b", "time", 2.2, unit="absolute"), rows, 1.0).met is False
    missing = _goal(c, Goal("t", "a", "time", 1.0, "gone"), rows, 1.0)
    assert missing.met is None and missing.detail == "not installed: x"


def test_harness_counts_saved_bytes_and_keeps_its_old_interface() -> None:
    import benchmarks._harness as old

    assert old.compare is harness.compare and old.Row is harness.Row and old.machine is harness.machine
    x = torch.randn(1000)
    assert harness.saved_bytes(lambda t: (t * 2.0).sum(), [x.requires_grad_()]) == 0
    assert harness.saved_bytes(lambda t: t.exp().sum(), [x]) == x.nbytes  # exp saves its result
    rows = harness.compare("c", {"two": lambda t: (t * 2).sum(), "exp": lambda t: t.exp().sum()}, [x],
                           repeats=1, warmup=0)
    assert [(r.label, r.ratio == 1.0, r.saved_mib) for r in rows] == [
        ("two", True, 0.0), ("exp", rows[1].median_ms == rows[0].median_ms, x.nbytes / 2**20)]
    assert harness.format_rows(rows).splitlines()[0] == (
        "| case | implementation | median ms | ratio | saved for backward (MiB) |")
    assert old.Row("c", "l", 1.0, 1.0, 0.0).status == "ok"


def test_quick_builds_are_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "monai", None)  # shapes only: spare the slow import
    cpu = torch.device("cpu")
    for c in CASES:
        built = c.build(True, cpu)
        assert sum(t.numel() for t in built.inputs) < 50_000, c.id
        assert set(built.grad) <= set(range(len(built.inputs)))
    assert bench_cases.peer("surely_not_a_module_xyz") is None


def test_gpu_presets_run_at_quick_shapes_on_cpu() -> None:
    """The GPU rows' candidates are real calls (bf16 included): run them once, tiny, on CPU."""
    from losskit.bench.runner import run_case

    for c in (c for c in CASES if c.gpu):
        rows, built, base = run_case(c, torch.device("cpu"), quick=True, repeats=1, peaks=None)
        assert base == next(iter(built.candidates)), c.id
        for r in rows:
            assert r.median_ms is not None or r.status.startswith(("not in torch", "not installed")), r
            assert r.saved_mib is None or r.saved_mib >= 0
