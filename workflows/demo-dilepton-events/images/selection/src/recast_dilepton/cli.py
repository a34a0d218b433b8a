"""Command line of the preserved steps:
``recast-dilepton select|reference|merge|plot``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import StepError, __version__


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="recast-dilepton")
    top.add_argument("--version", action="version", version=__version__)
    steps = top.add_subparsers(dest="step", required=True)

    select = steps.add_parser("select", help="select one signal event file")
    select.add_argument("--input", type=Path, required=True)
    select.add_argument("--output-dir", type=Path, required=True)

    reference = steps.add_parser(
        "reference", help="select the preserved backgrounds and the observed data"
    )
    reference.add_argument("--background", type=Path, required=True)
    reference.add_argument("--observed", type=Path, required=True)
    reference.add_argument("--output-dir", type=Path, required=True)

    merge = steps.add_parser("merge", help="merge the signal and build the model")
    merge.add_argument("--selected", type=Path, nargs="+", required=True)
    merge.add_argument("--reference", type=Path, required=True)
    merge.add_argument("--cross-section-fb", type=float, required=True)
    merge.add_argument("--point", required=True)
    merge.add_argument("--model-parameters", type=Path)
    merge.add_argument("--output-dir", type=Path, required=True)

    plot = steps.add_parser("plot", help="the selected distributions, stacked")
    plot.add_argument("--distributions", type=Path, required=True)
    plot.add_argument("--point", required=True)
    plot.add_argument("--output-dir", type=Path, required=True)
    return top


def dispatch(args: argparse.Namespace) -> None:
    # Imported late so that `--help` stays fast in a cold container.
    if args.step == "select":
        from . import selection

        selection.run_signal(args.input, args.output_dir)
    elif args.step == "reference":
        from . import selection

        selection.run_reference(args.background, args.observed, args.output_dir)
    elif args.step == "merge":
        from . import model

        model.run(
            args.selected,
            args.reference,
            args.cross_section_fb,
            args.point,
            args.model_parameters,
            args.output_dir,
        )
    else:
        from . import plotting

        plotting.run(args.distributions, args.point, args.output_dir)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        dispatch(args)
    except StepError as exc:
        print(f"recast-dilepton {args.step}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
