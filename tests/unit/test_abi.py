"""bpf/events.h's constants against their Python twins, as gcc computes them, and the config's limits.

The layout check (tests/integration/test_layout.py, and every start) covers the structs; this covers
every `#define EKP_*`: flags, limits, ids, map sizes. Each must have a twin in producer/records/
(abi.py, or the module of the family that uses it; the ids are the catalog's) with the value the C
compiler gives it, or be listed in abi.C_ONLY.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType

import pytest

from producer import config, resources
from producer.errors import ConfigError
from producer.records import abi, catalog

HEADER = resources.data_dir("bpf") / "events.h"
# Object-like macros only (a function-like one would be followed by "(").
DEFINE = re.compile(r"^#define (EKP_\w+)(?=\s|$)", re.M)
# Python constants of these modules that mirror nothing: derived from the layouts, or kernel facts.
# CREATING_FLAGS: the os module's O_CREAT | O_TMPFILE (file_open.py), not a value of the header;
# EXIT_SIGNAL_MAX: the kernel's _NSIG (process.py), a bound of the parser like PID_MAX_LIMIT
PYTHON_ONLY = {
    "PID_MAX_LIMIT",
    "INT64_MAX",
    "COMMON_SIZE",
    "SEQ_OFFSET",
    "SEQ_END",
    "CREATING_FLAGS",
    "EXIT_SIGNAL_MAX",
}


def mirror_modules() -> list[ModuleType]:
    families = {sys.modules[e.parse.__module__] for e in catalog.STREAMS if e.parse is not None}
    return [abi, *sorted(families, key=lambda m: m.__name__)]


def python_constants() -> dict[str, tuple[str, int]]:
    """EKP_<NAME> -> (module, value) of every public int constant of the mirror modules."""
    out: dict[str, tuple[str, int]] = {}
    for m in mirror_modules():
        for name, value in vars(m).items():
            if m is not abi and name in vars(abi):
                continue  # imported from abi
            if name.isupper() and not name.startswith("_") and type(value) is int:
                twin = f"EKP_{name}"
                assert twin not in out, f"{name}: in {out[twin][0]} and {m.__name__}"
                out[twin] = (m.__name__, value)
    for e in catalog.CATALOG:
        out[f"EKP_EVENT_{e.name.upper()}"] = ("catalog", e.id)
    out["EKP_EVENT_TYPES"] = ("catalog", len(catalog.CATALOG))
    return out


@pytest.fixture(scope="module")
def c_constants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Every EKP_* define of events.h (but the C-only ones), as a compiled program prints it."""
    names = [n for n in DEFINE.findall(HEADER.read_text()) if n not in abi.C_ONLY]
    assert len(names) > 30, names  # the regex still finds them
    d = tmp_path_factory.mktemp("abi")
    src, exe = d / "constants.c", d / "constants"
    prints = "".join(f'\tprintf("{n} %lld\\n", (long long)({n}));\n' for n in names)
    head = '#include <stdio.h>\n#include <linux/types.h>\n#include "events.h"\n'
    src.write_text(f"{head}\nint main(void)\n{{\n{prints}\treturn 0;\n}}\n")
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{HEADER.parent}", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def test_every_define_has_its_twin_with_the_same_value(c_constants: dict[str, int]) -> None:
    ours = python_constants()
    missing = sorted(set(c_constants) - set(ours))
    assert not missing, f"mirror these in producer/records/ (or list them in abi.C_ONLY): {missing}"
    wrong = {n: (v, ours[n]) for n, v in c_constants.items() if ours[n][1] != v}
    assert not wrong, f"C value vs (module, Python value): {wrong}"


def test_every_mirror_constant_exists_in_c(c_constants: dict[str, int]) -> None:
    ours = {n for n, (module, _) in python_constants().items() if n.removeprefix("EKP_") not in PYTHON_ONLY}
    assert sorted(ours - set(c_constants)) == []


def test_c_only_names_are_defines_of_the_header() -> None:
    defined = set(DEFINE.findall(HEADER.read_text()))
    assert set(abi.C_ONLY) <= defined


def test_the_bpf_maps_are_sized_by_the_header() -> None:
    src = (resources.data_dir("bpf") / resources.BPF_SOURCE).read_text()
    for name in ("comm", "uid", "pid", "cgroup", "prefix"):
        assert re.search(rf"BPF_HASH\(ekp_filter_{name}, .*, EKP_FILTER_{name.upper()}_MAX\);", src), name
    assert "BPF_ARRAY(ekp_filter_prefix_len, __u32, EKP_PREFIXES);" in src


# -- the config refuses what the kernel's maps cannot hold ------------------------------------------

LISTS = [
    ("comm", abi.FILTER_COMM_MAX, lambda i: f"c{i}"),
    ("uid", abi.FILTER_UID_MAX, lambda i: i),
    ("pid", abi.FILTER_PID_MAX, lambda i: i + 1),
    ("cgroup", abi.FILTER_CGROUP_MAX, lambda i: i + 1),
]


@pytest.mark.parametrize(("name", "size", "make"), LISTS, ids=[n for n, _, _ in LISTS])
def test_filter_lists_up_to_the_map_size(name: str, size: int, make: Callable[[int], object]) -> None:
    """`make(i)`: the i-th distinct value of the list."""
    config.validate({"filters": {name: {"deny": [make(i) for i in range(size)]}}})
    with pytest.raises(ConfigError, match=f"filters.{name}"):
        config.validate({"filters": {name: {"deny": [make(i) for i in range(size + 1)]}}})


def test_task_names_up_to_comm_len() -> None:
    config.validate({"filters": {"comm": {"deny": ["x" * (abi.COMM_LEN - 1)]}}})
    with pytest.raises(ConfigError, match="1 to 15 bytes"):
        config.validate({"filters": {"comm": {"deny": ["x" * abi.COMM_LEN]}}})


def prefixes(allow: list[str]) -> dict[str, object]:
    return {"events": {"file_open": {"enabled": True, "path_prefixes": {"allow": allow}}}}


def test_path_prefixes_up_to_the_map_and_its_lengths() -> None:
    same_length = [f"/p{i:08d}" for i in range(abi.FILTER_PREFIX_MAX + 1)]
    config.validate(prefixes(same_length[:-1]))
    with pytest.raises(ConfigError, match="at most 64 prefixes"):
        config.validate(prefixes(same_length))
    lengths = ["/" + "x" * n for n in range(1, abi.PREFIXES + 2)]
    config.validate(prefixes(lengths[:-1]))
    with pytest.raises(ConfigError, match="of at most 8 distinct lengths"):
        config.validate(prefixes(lengths))
    config.validate(prefixes(["/" + "y" * (abi.PREFIX_LEN - 2)]))
    with pytest.raises(ConfigError, match="1 to 63 bytes"):
        config.validate(prefixes(["/" + "y" * (abi.PREFIX_LEN - 1)]))
