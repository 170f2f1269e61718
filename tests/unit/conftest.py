from __future__ import annotations

from typing import Any

import pytest

from producer.records import catalog
from tests.support.records import CTX, exec_record


@pytest.fixture
def exec_dict() -> dict[str, Any]:
    return catalog.DECODERS["process_exec"](exec_record(), 0, CTX, 1_700_000_000_000_000_000)
