"""Command line of the preserved steps: ``recast-pyhf patch|fit|summarise|plot``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import StepError, __version__


def flag(text: str) -> bool:
    """A workflow's boolean as its command line spells it (yadage writes a
    Python bool as True/False, YAML and JSON as true/false)."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false, not {text!r}")
    return text.lower() == "true"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="recast-pyhf")
    top.add_argument("--version", action="version", version=__version__)
    steps = top.add_subparsers(dest="step", required=True)

    patch = steps.add_parser("patch", help="apply and check signal patches")
    patch.add_argument("--bkgonly", type=Path, required=True)
    patch.add_argument("--output-dir", type=Path, required=True)
    patch.add_argument("--signals", type=Path, nargs="+", required=True)

    fit = steps.add_parser("fit", help="CLs at mu = 1 and upper limits on mu")
    fit.add_argument("--patched", type=Path, required=True)
    fit.add_argument("--output-dir", type=Path, required=True)
    fit.add_argument("--backend", choices=["jax", "numpy"], default="jax")
    fit.add_argument(
        "--limits",
        type=flag,
        default=True,
        help="true (default): also the upper limits on mu and a plot grid; "
        "false: CLs at mu = 1 and its expected band only",
    )

    summarise = steps.add_parser("summarise", help="write recast result documents")
    summarise.add_argument("--fits", type=Path, required=True)
    summarise.add_argument("--output-dir", type=Path, required=True)

    plot = steps.add_parser("plot", help="CLs against mu with the expected band")
    plot.add_argument("--fits", type=Path, required=True)
    plot.add_argument("--output-dir", type=Path, required=True)
    return top


def dispatch(args: argparse.Namespace) -> None:
    # Imported late so that `--help` stays fast in a cold container.
    if args.step == "patch":
        from . import patching

        patching.run(args.bkgonly, args.signals, args.output_dir)
    elif args.step == "fit":
        from . import fitting

        fitting.run(args.patched, args.output_dir, args.backend, args.limits)
    elif args.step == "summarise":
        from . import summary

        summary.run(args.fits, args.output_dir)
    else:
        from . import plotting

        plotting.run(args.fits, args.output_dir)


# One thread each for BLAS and XLA: a fit is hundreds of small calls, and with
# several cores busy, pools of spinning threads made each call ten times slower.
# A batch uses more cores by running more step processes, not more threads.
SINGLE_THREADED = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    # Run each small computation on the calling thread instead of handing it to
    # another and waiting: on busy cores the hand-off cost more than the work.
    "JAX_CPU_ENABLE_ASYNC_DISPATCH": "false",
    # Where the platform names a compilation cache (JAX_COMPILATION_CACHE_DIR),
    # keep every compiled computation in it, the small ones that building a
    # model compiles too: together they cost a second or two per process.
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
}


def single_threaded() -> None:
    for name, value in SINGLE_THREADED.items():
        os.environ.setdefault(name, value)


def main(argv: list[str] | None = None) -> int:
    single_threaded()
    args = parser().parse_args(argv)
    try:
        dispatch(args)
    except StepError as exc:
        print(f"recast-pyhf {args.step}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
