"""``asr-trainer``: one entry point, one sub-command per module in this package.

Every module ``asr_trainer/bin/<name>.py`` (other than this one) that defines

* ``HELP: str`` -- a one-line description,
* ``add_arguments(parser: argparse.ArgumentParser) -> None`` and
* ``run(args: argparse.Namespace) -> None``

becomes the sub-command ``asr-trainer <name>`` (underscores become dashes).
Modules stay thin: parse, then call the library.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

import asr_trainer.bin as bin_pkg
from asr_trainer.errors import Interrupted, UserError

INTERRUPTED = 130  # the shell's status of a process stopped by Ctrl-C


def _subcommand_modules() -> dict[str, ModuleType]:
    modules = {}
    for info in sorted(pkgutil.iter_modules(bin_pkg.__path__), key=lambda i: i.name):
        if info.name == "main":
            continue
        module = importlib.import_module(f"asr_trainer.bin.{info.name}")
        if hasattr(module, "run") and hasattr(module, "add_arguments"):
            modules[info.name.replace("_", "-")] = module
    return modules


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless it has none worth showing (required, unset, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if action.required or unset or not action.option_strings:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in _subcommand_modules().items():
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args._run(args)
    except Interrupted as e:
        print(f"asr-trainer {args.command}: interrupted: {e}", file=sys.stderr)
        return INTERRUPTED
    except UserError as e:
        print(f"asr-trainer {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"asr-trainer {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
