"""The fast way to start a scripted runtime: ``launcher.c`` plus a pre-started fork server.

``build_launcher`` compiles ``launcher.c`` on first use (under ``build/launcher``, ``impl.places.build_dir``).
``ForkServer`` starts ``scripted_runtime.py --zygote``, which imports once and forks a child
per launcher that connects; ``command(script_path)`` is what a supervisor launches instead of
a fresh interpreter. The supervisor cannot tell the difference (see ``launcher.c``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from impl.places import build_dir

WIRE = Path(__file__).resolve().parent
SCRIPTED_RUNTIME = WIRE / "scripted_runtime.py"
LAUNCHER_SOURCE = WIRE / "launcher.c"
BUILD = build_dir("launcher")


def build_launcher() -> Path | None:
    """The compiled launcher, built on first use (under ``build/launcher``); None if there is no C compiler."""
    source = LAUNCHER_SOURCE.read_bytes()
    binary = BUILD / f"finalstate-launcher-{hashlib.sha256(source).hexdigest()[:12]}"
    if binary.exists():
        return binary
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    BUILD.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(f".{os.getpid()}.tmp")
    result = subprocess.run([compiler, "-O2", "-o", str(partial), str(LAUNCHER_SOURCE)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"building {LAUNCHER_SOURCE.name} failed:\n{result.stderr}")
    os.replace(partial, binary)  # atomic: parallel workers may build at once
    return binary


class ForkServer:
    """The scripted runtime's fork server, started on first use and ended by ``close``."""

    def __init__(self, launcher: Path, socket_path: Path):
        self.launcher = launcher
        self.socket_path = socket_path
        self.process: subprocess.Popen | None = None

    def command(self, script_path: Path) -> list[str]:
        """The command that runs ``script_path`` in a child forked by this server."""
        self.ensure_started()
        return [str(self.launcher), str(self.socket_path), str(script_path)]

    def ensure_started(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(SCRIPTED_RUNTIME), f"--zygote={self.socket_path}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        if self.process.stdout.readline() != b"ready\n":
            raise RuntimeError("the fork server did not start")
        self.process.stdout.close()

    def close(self) -> None:
        if self.process is None:
            return
        self.process.stdin.close()  # its signal to end: it ends its children and exits
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
