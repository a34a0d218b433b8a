"""Isolation of a local step from everything but its own run, with bubblewrap.

A local step is a process of the worker's own user, which could otherwise
read (and write) every other run's workspace under RECAST_WORK_DIR. Wrapped
in ``bwrap``, it runs in new mount, PID, IPC, UTS, cgroup and user
namespaces (and without the network unless the step asks for it) where only
these are visible: the system (/usr and a few files of /etc), the step's
environment and the interpreter it was built from, read-only; its run folder
and the folders of its inputs, read-only; its own output folder, writable;
its credentials folder, read-only; and a private /tmp, /proc and /dev. Paths
keep their host names, so a command's paths mean the same inside.

Modes (RECAST_LOCAL_ISOLATION): ``bwrap`` wraps every step of a run and
refuses to start a step when bubblewrap cannot run; ``auto`` wraps when it
can and otherwise runs the step unwrapped, with a warning in the worker's
log and ``isolation: none`` in the step's record; ``none`` never wraps.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

MODES = ("auto", "bwrap", "none")
# The uid and gid a step has inside its user namespace (mapped to the
# worker's own outside, so its outputs stay the worker's files).
STEP_ID = "1000"
# What of /etc a Python step needs: the loader cache, names of users and
# groups, time zones, TLS roots. Not /etc as a whole: it may hold the
# platform's own configuration and, for a root worker, /etc/shadow.
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/mime.types",
    "/etc/fonts",
)
# Merged-/usr systems have these as links into /usr; older ones as folders.
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


# The sandbox's own /tmp, /proc and /dev, never the host's.
PRIVATE = ("--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev")  # noqa: S108


# New namespaces of every kind, the step as STEP_ID inside; no capability,
# even in the bounding set (a root worker's sandbox would keep it), and no
# user namespace of its own inside: the kernel's namespace code is what a
# step would attack to get out. --disable-userns needs bubblewrap 0.8.
NAMESPACES = (
    *("--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"),
    *("--uid", STEP_ID, "--gid", STEP_ID),
)


class IsolationUnavailable(Exception):
    """RECAST_LOCAL_ISOLATION=bwrap, yet bubblewrap cannot run here."""


@functools.cache
def bwrap_works() -> str | None:
    """Why bubblewrap cannot isolate a step here, or None when it can (probed
    once per process: the kernel may forbid user namespaces)."""
    executable = shutil.which("bwrap")
    if executable is None:
        return "bubblewrap (bwrap) is not installed"
    done = subprocess.run(
        [executable, *system_mounts(), *PRIVATE, *NAMESPACES, "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"bwrap cannot create namespaces here: {done.stderr.strip()}"
    return None


def wanted(mode: str) -> bool:
    """Whether a step should be wrapped under ``mode``; raises
    IsolationUnavailable when the mode demands it and it cannot be had."""
    if mode == "none":
        return False
    why = bwrap_works()
    if why is None:
        return True
    if mode == "bwrap":
        raise IsolationUnavailable(
            f"local steps must be isolated (RECAST_LOCAL_ISOLATION=bwrap), but {why}"
        )
    warn_once(why)
    return False


@functools.cache
def warn_once(why: str) -> None:
    logger.warning(
        "local steps run WITHOUT isolation: %s; a step can read every other "
        "run's workspace. Install bubblewrap, or set RECAST_LOCAL_ISOLATION=none "
        "to accept this (bwrap to refuse such steps)",
        why,
    )


def system_mounts() -> list[str]:
    arguments = ["--ro-bind", "/usr", "/usr"]
    for top in TOP_LEVEL:
        path = Path(top)
        if path.is_symlink():
            arguments += ["--symlink", str(path.readlink()), top]
        elif path.is_dir():
            arguments += ["--ro-bind", top, top]
    for name in ETC_FILES:
        arguments += ["--ro-bind-try", name, name]
    return arguments


def interpreter_home(venv: Path) -> Path | None:
    """The installation a virtual environment's interpreter came from (its
    standard library lives there, outside the environment)."""
    config = venv / "pyvenv.cfg"
    if not config.exists():
        return None
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return Path(value.strip()).parent
    return None


def wrap(
    command: list[str],
    venv: Path,
    readable: Iterable[str],
    writable: str,
    network: bool,
    shared: Iterable[str] = (),
) -> list[str]:
    """``command`` inside a bubblewrap sandbox that sees only the system,
    ``venv`` (and its interpreter), ``readable`` read-only and ``writable``
    read-write. ``writable`` is mounted last, over a read-only parent.
    ``shared`` folders are read-write too: caches that every step of ``venv``
    shares (its compiled code), never a run's files."""
    arguments = ["bwrap", *system_mounts(), *PRIVATE]
    home = interpreter_home(venv)
    # After the private /tmp: a run folder may itself lie under /tmp.
    for path in [venv, *([home] if home else []), *readable]:
        arguments += ["--ro-bind-try", str(path), str(path)]
    for path in shared:
        arguments += ["--bind", path, path]
    arguments += ["--bind", writable, writable]
    arguments += NAMESPACES
    if network:
        arguments.append("--share-net")
    # The step's shell is the sandbox's first process, a child of bwrap that
    # bwrap reaps itself: os.wait4 on bwrap then counts the step's CPU time
    # (bwrap's own init would leave it unreaped). It stays in the worker's
    # process group (no --new-session; it has no terminal), so a stop's
    # SIGTERM reaches its processes; when bwrap dies, so does the shell, and
    # with it the PID namespace, so every process the step left behind.
    arguments += ["--as-pid-1", "--die-with-parent", "--chdir", writable]
    return [*arguments, "--", *command]
