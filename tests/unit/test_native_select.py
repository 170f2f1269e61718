"""Which data plane the readers run (producer/native: select), and the one librdkafka both planes use."""

from __future__ import annotations

import re
from pathlib import Path

import confluent_kafka
import pytest

from producer import config, native
from producer.errors import ConfigError, PackageDataError
from producer.kafka.client import librdkafka_module
from producer.ledger.book import Snapshot
from producer.ops import preflight
from producer.ops.metrics import Health, render
from producer.records import catalog

# What the native plane covers: NATIVE_TYPES (and the processes stream, on by default), with the spool.
COVERED_ONLY = {
    "events": {t: {"enabled": t in native.NATIVE_TYPES or t == "processes"} for t in catalog.STREAM_TYPES},
}


def cfg(plane: str, events: dict[str, object] | None = None) -> config.Config:
    return config.validate({"readers": {"data_plane": plane}, **(events or {})})


def test_python_when_configured_or_when_the_config_has_a_gap() -> None:
    assert native.select(cfg("python", COVERED_ONLY)) == native.Choice("python", "python", "configured")
    deep = {"events": {"process_exec": {"ancestors": 2}}}
    reason = "no native inline ancestors yet (events.process_exec.ancestors: 0)"
    assert native.select(cfg("auto", deep)) == native.Choice("python", "auto", reason)
    assert not native.select(cfg("auto", deep)).fallback


def test_the_defaults_run_native_spool_and_all() -> None:
    defaults = cfg("auto")
    assert defaults.spool.enabled and native.gaps(defaults) == []
    assert native.select(defaults).active == "native"


def test_native_required_with_what_it_does_not_cover_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a stream type without a native encoder (every one has one today): named, with its setting
    monkeypatch.setattr(native, "NATIVE_TYPES", native.NATIVE_TYPES - {"tcp_close"})
    with pytest.raises(
        ConfigError, match=r"no native encoder yet for tcp_close \(events.<type>.enabled: false\)"
    ):
        cfg("native", COVERED_ONLY)
    choice = native.select(cfg("auto"))
    assert choice.reason == "no native encoder yet for tcp_close (events.<type>.enabled: false)"


def test_inline_ancestors_stay_on_the_python_plane() -> None:
    """An exec's ancestors are read from the kernel's process table per record: Python's work."""
    events: dict[str, object] = dict(COVERED_ONLY["events"])  # type: ignore[call-overload]
    deep = {"events": {**events, "process_exec": {"ancestors": 3}}}
    reason = "no native inline ancestors yet (events.process_exec.ancestors: 0)"
    with pytest.raises(ConfigError, match=r"readers.data_plane.*" + re.escape(reason)):
        cfg("native", deep)
    assert native.select(cfg("auto", deep)) == native.Choice("python", "auto", reason)
    # not a gap while process_exec is off, whatever its depth
    off = {**deep, "events": {**events, "process_exec": {"enabled": False, "ancestors": 3}}}
    assert native.select(cfg("auto", off)).active == "native"


def test_native_where_it_covers_every_enabled_type() -> None:
    for wanted in ("auto", "native"):
        choice = native.select(cfg(wanted, COVERED_ONLY))
        assert choice.active == "native", choice
        assert "librdkafka" in Path(choice.library).name


def test_an_extension_that_cannot_run_falls_back_or_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise native.UnavailableError("the extension is not built (test)")

    monkeypatch.setattr(native, "probe", broken)
    choice = native.select(cfg("auto", COVERED_ONLY))
    assert choice.active == "python" and choice.fallback and "not built" in choice.reason
    with pytest.raises(PackageDataError, match=r"readers.data_plane: native cannot run here: .*not built"):
        native.select(cfg("native", COVERED_ONLY))


def test_one_librdkafka_in_the_process_the_one_confluent_kafka_loaded() -> None:
    from producer.native import _dataplane

    version, number, library = _dataplane.probe(librdkafka_module())
    assert (version, number) == confluent_kafka.libversion()
    mapped = {
        line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "librdkafka" in line
    }
    assert mapped == {str(Path(library).resolve())}, mapped  # not a second copy beside it


def test_check_says_which_plane_will_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert preflight.check_data_plane(cfg("auto", COVERED_ONLY)).detail.startswith("native, librdkafka /")
    deep = {"events": {"process_exec": {"ancestors": 2}}}
    reason = "no native inline ancestors yet (events.process_exec.ancestors: 0)"
    assert preflight.check_data_plane(cfg("auto", deep)).detail == f"python ({reason})"
    monkeypatch.setattr(native, "probe", lambda: (_ for _ in ()).throw(native.UnavailableError("gone")))
    with pytest.raises(PackageDataError):
        preflight.check_data_plane(cfg("native", COVERED_ONLY))


def test_the_metric_says_which_plane_runs() -> None:
    page = render(Snapshot(), Health(data_plane="native"))
    assert 'ebpf_producer_data_plane{plane="native"} 1' in page
    assert 'ebpf_producer_data_plane{plane="python"} 1' in render(Snapshot(), Health())
