"""The image, built once per session from this checkout by scripts/image.sh (cached layers)."""

from __future__ import annotations

import pytest

from tests.image.podman import build_image


@pytest.fixture(scope="session")
def image() -> str:
    return build_image()
