"""Every ``asr-trainer`` option says what it is, and its help shows its default (when it has one)."""

import argparse

import pytest

from asr_trainer.bin.main import HelpFormatter, build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _has_default(action: argparse.Action) -> bool:
    return not (action.required or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help_and_shows_its_default(name):
    parser = _subcommands()[name]
    formatter = HelpFormatter(prog=name)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"asr-trainer {name} {action.option_strings or action.dest}: no help text"
        if action.option_strings and _has_default(action):
            assert "default" in formatter._get_help_string(action), (name, action.option_strings)
    assert "(default: " in parser.format_help()
