from __future__ import annotations

from typing import Any

import pytest

from producer.events import DecodeContext, decode_process_exec
from tests.unit.rawrecords import exec_record

CTX = DecodeContext(host="node-1", boot_id="b00t", max_args=32, max_arg_len=128, include_failed=False)


@pytest.fixture
def exec_dict() -> dict[str, Any]:
    return decode_process_exec(exec_record(), 0, CTX, 1_700_000_000_000_000_000)
