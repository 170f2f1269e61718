"""Where the package data lives: the BPF sources (bpf/) and the Avro schemas (schemas/).

The wheel carries both inside the package (producer/bpf/, producer/schemas/; pyproject.toml maps the
checkout's top-level directories there), so an installed collector needs nothing from a source tree.
A checkout (or an editable install) finds them beside the package. $EKP_BPF_DIR and $EKP_SCHEMAS_DIR
override both, for a development tree of BPF code or schemas.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable
from pathlib import Path

from .errors import PackageDataError

# The BPF module's main file, then the headers it includes, in the order the compiler reads them.
BPF_SOURCE = "collector.bpf.c"
BPF_FILES = (BPF_SOURCE, "ledger.bpf.h", "records.bpf.h", "events.h")


def data_dir(name: str) -> Path:
    """bpf/ or schemas/: $EKP_<NAME>_DIR, else inside the installed package, else beside it (checkout)."""
    env = os.environ.get(f"EKP_{name.upper()}_DIR")
    if env:
        return Path(env)
    # BCC compiles from a path, so the data must be real files: a filesystem install gives a Path.
    packaged = importlib.resources.files("producer") / name
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


def require(name: str, files: Iterable[str]) -> Path:
    """data_dir(name), checked to hold every one of `files`; PackageDataError names what is missing."""
    d = data_dir(name)
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        var = f"EKP_{name.upper()}_DIR"
        where = f"from ${var}" if os.environ.get(var) else "the installed package's"
        raise PackageDataError(
            f"package data: {', '.join(missing)} missing in {d} ({where} {name}/); the install is "
            f"incomplete: reinstall the wheel or image, or point {var} at a complete {name}/ directory"
        )
    return d
