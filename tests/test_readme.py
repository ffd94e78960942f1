"""The README's two commands are the ones CI and newcomers run: keep them in step with .ci/run."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_opens_with_the_demo_and_the_test_command():
    demo, tests = readme_commands()[:2]
    assert demo.endswith("accompgen demo")
    assert "pytest" in tests
    for command in (demo, tests):
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def documented_cli_lines() -> list[str]:
    """Every line of a README code block that runs `accompgen` or `accompgen-bridge`, continuations joined."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            for command in line.split(" && "):
                if command.startswith(("accompgen ", "accompgen-bridge ")):
                    lines.append(command.strip())
    return lines


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("line", documented_cli_lines())
def test_every_documented_command_line_parses(line, capsys):
    from accompgen.apps import cli as accompgen_cli
    from accompgen_bridge import cli as bridge_cli

    program, *words = shlex.split(re.sub(r"[\[\]]", " ", line))
    module = accompgen_cli if program == "accompgen" else bridge_cli
    parser = module.build_parser()
    known = options_of(parser)
    name = next(word for word in words if not word.startswith("-") and word in subcommands(parser))
    sub = subcommands(parser)[name]
    for word in words:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in known | options_of(sub), f"{line}: {program} {name} has no {option}"
    with pytest.raises(SystemExit) as exit_:
        module.main([name, "--help"])
    assert exit_.value.code == 0
    assert name in capsys.readouterr().out
