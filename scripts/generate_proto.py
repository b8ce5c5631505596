"""Regenerate the committed protobuf code in src/etcd_elector/_proto/.

Usage:
    python scripts/generate_proto.py          # rewrite the generated files
    python scripts/generate_proto.py --check  # exit 1 if the committed files are stale

The generator is grpcio-tools, pinned in pyproject's ``dev`` extra; another
version would produce different code, so the script refuses to run with one.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PROTO_PACKAGE = "etcd_elector/_proto"
PROTOS = ("kv.proto", "rpc.proto")
GENERATED = ("kv_pb2.py", "kv_pb2.pyi", "rpc_pb2.py", "rpc_pb2.pyi")

# protoc's Python gencode calls runtime_version.ValidateProtobufRuntimeVersion(),
# which rejects any protobuf runtime of another major version than the generator's.
# We support protobuf >=4.25,<8: the builder API the gencode uses exists since 4.25,
# and CI tests the lowest and the highest runtimes of that range. So the gate (and
# its import, which does not exist before protobuf 5.26) is cut out of the output.
_GATE_IMPORT = re.compile(
    r"^from google\.protobuf import runtime_version as _runtime_version\n", re.MULTILINE
)
_GATE_CALL = re.compile(
    r"^_runtime_version\.ValidateProtobufRuntimeVersion\(\n.*?^\)\n", re.MULTILINE | re.DOTALL
)
_NOTE_ANCHOR = re.compile(r"^# Protobuf Python Version: .*\n", re.MULTILINE)
_NOTE = (
    "# Post-processed by scripts/generate_proto.py: runtime version gate removed"
    " (see that script).\n"
)


class GenerationError(Exception):
    """The generated code could not be produced as expected."""


def pinned_grpcio_tools() -> str:
    """The grpcio-tools version pinned (``==``) in pyproject's ``dev`` extra."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for requirement in data["project"]["optional-dependencies"]["dev"]:
        match = re.fullmatch(r"\s*grpcio-tools\s*==\s*([^\s;]+)\s*", requirement)
        if match:
            return match.group(1)
    raise GenerationError("pyproject.toml: no 'grpcio-tools==X' pin in the 'dev' extra")


def check_generator_version() -> None:
    pinned = pinned_grpcio_tools()
    try:
        installed = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        raise GenerationError(
            f"grpcio-tools is not installed; install the pinned version: "
            f"pip install 'grpcio-tools=={pinned}' (or pip install -e '.[dev]')"
        ) from None
    if installed != pinned:
        raise GenerationError(
            f"grpcio-tools {installed} is installed but pyproject.toml pins {pinned}; "
            f"the generated code depends on the generator version, so install the pinned "
            f"one: pip install 'grpcio-tools=={pinned}'"
        )


def postprocess_pb2(text: str, name: str) -> str:
    """Remove the runtime version gate from one generated ``_pb2.py`` file."""
    text, imports = _GATE_IMPORT.subn("", text)
    text, calls = _GATE_CALL.subn("", text)
    if imports != 1 or calls != 1 or "_runtime_version" in text:
        raise GenerationError(
            f"{name}: the runtime version gate does not look as expected "
            f"(imports removed: {imports}, calls removed: {calls}); "
            "update the post-processing in scripts/generate_proto.py"
        )
    text, notes = _NOTE_ANCHOR.subn(lambda m: m.group(0) + _NOTE, text, count=1)
    if notes != 1:
        raise GenerationError(f"{name}: no '# Protobuf Python Version' header line")
    return text


def normalise(text: str) -> str:
    """Fixed line endings and exactly one trailing newline, whatever the platform."""
    return text.replace("\r\n", "\n").rstrip("\n") + "\n"


def generate(out_root: Path) -> dict[str, str]:
    """Run protoc into ``out_root`` and return the final text of each generated file."""
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        "src",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        *(f"{PROTO_PACKAGE}/{proto}" for proto in PROTOS),
    ]
    # Relative paths from the project root: the file names embedded in the
    # descriptors must not depend on where the checkout lives.
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GenerationError(f"protoc failed ({result.returncode}):\n{result.stderr}")
    outputs: dict[str, str] = {}
    for name in GENERATED:
        text = (out_root / PROTO_PACKAGE / name).read_text(encoding="utf-8")
        if name.endswith(".py"):
            text = postprocess_pb2(text, name)
        outputs[name] = normalise(text)
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed generated files differ",
    )
    args = parser.parse_args(argv)
    target = SRC / PROTO_PACKAGE
    try:
        check_generator_version()
        with tempfile.TemporaryDirectory(prefix="etcd-elector-proto-") as tmp:
            outputs = generate(Path(tmp))
    except GenerationError as exc:
        print(f"generate_proto: error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        stale: list[str] = []
        for name, text in outputs.items():
            path = target / name
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current != text:
                stale.append(name)
                diff = difflib.unified_diff(
                    (current or "").splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"committed/{name}",
                    f"regenerated/{name}",
                    n=1,
                )
                sys.stderr.writelines(list(diff)[:40])
        if stale:
            files = ", ".join(f"{PROTO_PACKAGE}/{name}" for name in stale)
            print(
                f"generate_proto: stale generated code: {files}; "
                "run 'python scripts/generate_proto.py' and commit the result",
                file=sys.stderr,
            )
            return 1
        print("generate_proto: generated code is up to date")
        return 0

    for name, text in outputs.items():
        (target / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote src/{PROTO_PACKAGE}/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
