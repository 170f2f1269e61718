"""The benchmark's pure parts: its plan, the collector config it writes, decoding the peers'
messages, and the arithmetic of medians, loss-free rates and verdicts."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

import bench
from bench import pipelines, report
from bench.pipelines import BpftraceKcat, Decoded, Lost, Target
from bench.runner import Measurement, percentile
from producer import config, native
from producer.errors import ConfigError

T = Target(comm="ekpb-0123abcd", path=Path("/tmp/ekp-bench-x/target"), prefix="ekpbench-1")


def plan(*argv: str) -> bench.Plan:
    return bench._plan(bench.parser().parse_args(list(argv)))


def run(pipeline: str, rate: int, generated: int, delivered: int, **kw: float) -> Measurement:
    m = Measurement("sweep", pipeline, rate, 1, generated, generated=generated, delivered=delivered)
    m.load_s = kw.get("load_s", generated / rate if rate else 1.0)
    m.cpu_s = kw.get("cpu_s", 0.0)
    m.lat_p99_ms = kw.get("p99")
    return m


@pytest.mark.parametrize(
    "name", ["collector", "collector-tuned", "collector-native", "collector-native-tuned"]
)
def test_the_collector_config_is_valid_and_narrowed_to_the_load(name: str) -> None:
    collector = pipelines.make(name, pipelines.TUNED)
    assert isinstance(collector, pipelines.Collector)
    cfg = config.validate(pipelines.collector_config(T, "127.0.0.1:19092", collector.overrides))
    # native is required there (no fallback to measure instead), python pinned elsewhere (the reference)
    assert cfg.readers.data_plane == ("native" if "native" in name else "python")
    assert cfg.spool.enabled  # the defaults' spool on both planes
    assert native.gaps(cfg) == []
    assert cfg.events.enabled_types() == ("file_open",)
    assert cfg.events.file_open.path_prefixes.allow == ("/tmp/ekp-bench-x/",)
    assert cfg.filters.comm.allow == (T.comm,)
    assert cfg.kafka.topic_prefix == T.prefix
    assert cfg.metrics.listen == ""


def test_the_default_collector_keeps_the_built_in_reader_settings() -> None:
    cfg = config.validate(pipelines.collector_config(T, "127.0.0.1:19092", {}))
    assert cfg.readers == config.ReadersConfig()
    assert dict(cfg.kafka.client) == {}


def test_bpftrace_lines_decode_and_lost_events_count() -> None:
    p = BpftraceKcat()
    line = {"type": "printf", "data": f"123456789 3 10 11 0 524288 {T.comm} /tmp/a b/target\n"}
    assert p.decode(json.dumps(line).encode()) == Decoded(T.comm, "/tmp/a b/target", 123456789, "mono")
    assert p.decode(b'{"type": "lost_events", "data": {"events": 42}}') == Lost(42)
    assert p.decode(b'{"type": "attached_probes", "data": {"probes": 2}}') is None


def test_plan_defaults_quick_and_rates() -> None:
    full = plan()
    assert full.modes == ("sweep", "idle", "sustained") and full.repeats == 3
    assert full.rates[-1] == 0 and 20_000 in full.rates and full.out.name == "benchmarks"
    quick = plan("--quick")
    assert quick.repeats == 1 and quick.out.name == "bench-results"
    assert plan("--rates", "5000,max", "--repeats", "2").rates == (5000, 0)


@pytest.mark.parametrize(
    "argv", [["--mode", "sweep,nap"], ["--pipelines", "falco"], ["--rates", "fast"], ["--seconds", "-1"]]
)
def test_plan_refuses_bad_options(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        plan(*argv)


def test_the_printed_command_reproduces_the_plan() -> None:
    p = plan("--quick", "--pipelines", "collector,naive-bcc", "--rates", "1000,max")
    prog = shlex.split(p.command())
    assert prog[:3] == ["python", "-m", "bench"]
    again = plan(*prog[3:], "--out", str(p.out))
    assert again.command() == p.command()


def test_percentile_is_nearest_rank() -> None:
    v = [float(x) for x in range(1, 101)]
    assert percentile(v, 50) == 50.0
    assert percentile(v, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_measurement_arithmetic() -> None:
    m = run("collector", 10_000, 100_000, 99_000, cpu_s=0.3)
    assert m.lost == 1000 and m.loss_pct == pytest.approx(1.0)
    assert m.cpu_us_per_event == pytest.approx(0.3e6 / 99_000)
    assert m.generated_rate == pytest.approx(10_000)


def test_median_ignores_failed_runs_and_states_the_spread() -> None:
    runs = [run("c", 1000, 1000, 1000, cpu_s=c) for c in (0.010, 0.012, 0.011)]
    bad = run("c", 1000, 1000, 0, cpu_s=99)
    bad.status = "FAILED: x"
    assert report.median([*runs, bad], lambda m: m.cpu_us_per_event) == pytest.approx(11.0)
    assert report.spread_pct(runs, lambda m: m.cpu_us_per_event) == pytest.approx(100 * 1 / 11)


def sweep(pipeline: str, lossless_up_to: int, rates: tuple[int, ...]) -> list[Measurement]:
    return [run(pipeline, r, r, r if r <= lossless_up_to else r // 2) for r in rates]


def test_loss_free_rate_and_the_rate_that_lost() -> None:
    rates = (5000, 10_000, 20_000)
    lf = report.loss_free(sweep("p", 10_000, rates), "p", rates)
    assert (lf.rate, lf.offered, lf.ceiling) == (10_000, 10_000, 20_000)
    never = report.loss_free(sweep("p", 100_000, rates), "p", rates)
    assert never.ceiling is None and never.offered == 20_000
    always = report.loss_free(sweep("p", 0, rates), "p", rates)
    assert always.offered is None and always.ceiling == 5000


def test_ratio_verdicts_respect_the_sweep_resolution() -> None:
    rates = (5000, 10_000, 20_000, 50_000)
    ms = [*sweep("collector", 20_000, rates), *sweep("bpftrace-kcat", 5000, rates)]
    rows = report.targets(ms, ("collector", "bpftrace-kcat"), rates, {})
    ratio = next(r for r in rows if r[0].startswith("max loss-free"))
    assert ratio[3] == "PASS"  # collector >= 20k, bpftrace < 10k: at least 2x
    ms = [*sweep("collector", 10_000, rates), *sweep("bpftrace-kcat", 5000, rates)]
    ratio = next(r for r in report.targets(ms, ("collector", "bpftrace-kcat"), rates, {}) if "loss" in r[0])
    assert ratio[3] == "INCONCLUSIVE"  # anything from 1x to 4x fits
    ms = [*sweep("collector", 5000, rates), *sweep("bpftrace-kcat", 50_000, rates)]
    ratio = next(r for r in report.targets(ms, ("collector", "bpftrace-kcat"), rates, {}) if "loss" in r[0])
    assert ratio[3] == "FAIL"


def test_latency_cpu_and_sustained_targets() -> None:
    rates = (20_000,)
    ms = [run("collector", 20_000, 200_000, 200_000, cpu_s=0.4, p99=80.0)]
    s = run("collector", 50_000, 3_000_000, 3_000_000)
    s.mode = "sustained"
    rows = {r[0]: r for r in report.targets([*ms, s], ("collector",), rates, {})}
    assert rows["CPU per event at loss-free max ≤ 3 µs"][3] == "PASS"  # 2 µs
    assert rows["p99 latency at 20,000/s ≤ 100 ms"][3] == "PASS"
    assert rows["zero loss at 50,000/s for 60 s, default config"][3] == "PASS"
    s.load_s = 10.0
    rows = {r[0]: r for r in report.targets([*ms, s], ("collector",), rates, {})}
    assert rows["zero loss at 50,000/s for 60 s, default config"][3] == "INCONCLUSIVE"


def test_native_targets_cpu_with_ratios_from_the_same_run_and_loss_free_rates() -> None:
    rates = (100_000, 200_000, 400_000)
    ms = [
        run("collector", 100_000, 1_000_000, 1_000_000, cpu_s=7.0),
        run("bpftrace-kcat", 100_000, 1_000_000, 1_000_000, cpu_s=6.0),
        *[run("collector-native", r, r * 10, r * 10, cpu_s=r * 10 * 1.5e-6) for r in rates],
        *[run("collector-native-tuned", r, r * 10, r * 10 if r < 400_000 else r, cpu_s=1.0) for r in rates],
    ]
    pipes = ("collector", "collector-native", "collector-native-tuned", "bpftrace-kcat")
    rows = [r for r in report.targets(ms, pipes, rates, {}) if r[1].startswith("collector-native")]
    got = {(r[0], r[1]): r for r in rows}
    cpu = got[("CPU per event at 100,000/s ≤ 2 µs", "collector-native")]
    assert cpu[2] == "1.50 µs (x0.21 of collector's 7.00; x0.25 of bpftrace-kcat's 6.00)" and cpu[3] == "PASS"
    # collector-tuned did not run: no ratio against it, only the peer's
    tuned_cpu = got[("CPU per event at 100,000/s ≤ 2 µs", "collector-native-tuned")]
    assert tuned_cpu[2:] == ["1.00 µs (x0.17 of bpftrace-kcat's 6.00)", "PASS"]
    assert got[("max loss-free rate ≥ 200,000/s", "collector-native")][3] == "PASS"
    tuned = got[("max loss-free rate ≥ 400,000/s", "collector-native-tuned")]
    assert tuned[3] == "FAIL" and "lost at 400,000/s" in tuned[2]


def test_sweep_table_has_a_row_per_pipeline_and_rate() -> None:
    rates = (5000, 0)
    ms = [*sweep("untraced", 10**9, rates), *sweep("collector", 10**9, rates)]
    text = report.sweep_table(ms, ("collector",), rates)
    assert text.count("\n| collector |") == 2 and "| max |" in text
