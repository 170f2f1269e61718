"""Build hook: the CRI v1 gRPC stubs are generated from producer/k8s/proto/api.proto at build time.

Everything else about the package is in pyproject.toml. The stubs (producer/k8s/cri_v1/) are not in git:
a wheel gets them in its build directory; an editable install imports the source tree, so there they are
written next to the sources.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTO_DIR = "producer/k8s/proto"
STUBS = "producer/k8s/cri_v1"


def generate_stubs(out_root: Path) -> None:
    from grpc_tools import protoc  # a build-system requirement, present only while building

    pkg = out_root / STUBS
    pkg.mkdir(parents=True, exist_ok=True)
    # The virtual path makes the generated modules import each other as producer.k8s.cri_v1.*, and
    # registers the file under a name no other package uses in protobuf's global descriptor pool.
    args = [
        "grpc_tools.protoc",
        f"--proto_path={STUBS}={ROOT / PROTO_DIR}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"{STUBS}/api.proto",
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO_DIR}/api.proto")
    (pkg / "__init__.py").write_text(f'"""CRI v1 stubs generated at build time from {PROTO_DIR}/api.proto."""\n')


class BuildPyWithStubs(build_py):
    def run(self) -> None:
        super().run()  # first: a stale copy from the source tree must not overwrite fresh stubs
        generate_stubs(ROOT if self.editable_mode else Path(self.build_lib))


setup(cmdclass={"build_py": BuildPyWithStubs})
