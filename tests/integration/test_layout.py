"""bpf/events.h vs producer/records/, as the compiler lays the structs out (real BCC compile)."""

from __future__ import annotations

import dataclasses

import pytest

from producer import config
from producer.errors import LayoutDriftError
from producer.kernel.build import BpfModule, compare_layout
from producer.records import process_exec

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def loaded() -> BpfModule:
    # every event type compiled in, so every layout map is checked
    return BpfModule(
        config.validate(
            {
                "events": {
                    "process_exec": {"max_args": 8, "max_arg_len": 64},
                    "file_open": {"enabled": True},
                    "syscall_counts": {"enabled": True},
                }
            }
        )
    )


def test_mirror_matches_the_compiled_structs(loaded: BpfModule) -> None:
    loaded.check_layouts()  # raises on any difference
    leaf = loaded.table("ekp_layout_process_exec").Leaf
    assert leaf.args.offset == process_exec.EXEC.struct.size
    assert leaf.args.size == 8 * 64  # EKP_ARGS_BUF follows the cflags


def test_a_moved_field_is_caught(loaded: BpfModule) -> None:
    leaf = loaded.table("ekp_layout_process_exec").Leaf
    fields = list(process_exec.EXEC.fields)
    i, j = fields.index(("task.uid", "I")), fields.index(("task.gid", "I"))
    fields[i], fields[j] = fields[j], fields[i]
    swapped = dataclasses.replace(process_exec.EXEC, fields=tuple(fields))
    with pytest.raises(LayoutDriftError, match=r"task\.uid at 60\+4 in C, 64\+4"):
        compare_layout(swapped, leaf)


def test_a_resized_or_missing_field_is_caught(loaded: BpfModule) -> None:
    leaf = loaded.table("ekp_layout_process_exec").Leaf
    widened = dataclasses.replace(
        process_exec.EXEC,
        fields=tuple((n, "Q" if n == "retval" else f) for n, f in process_exec.EXEC.fields),
    )
    with pytest.raises(LayoutDriftError, match=r"retval"):
        compare_layout(widened, leaf)
    shorter = dataclasses.replace(process_exec.EXEC, fields=process_exec.EXEC.fields[:-1])
    with pytest.raises(LayoutDriftError, match="not mirrored: parent_filename"):
        compare_layout(shorter, leaf)
