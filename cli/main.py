"""The ``modelreg`` root group.

Commands are discovered, not listed: every module ``cli/<name>.py`` that defines ``command`` (a click
command or group) is a subcommand, imported only when it runs (``modelreg --help`` imports no command
module's heavy dependencies, and never torch).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from cli._app import App, handle_errors, own_process
from registry import __version__

_NOT_COMMANDS = {"main"}


def _command_modules() -> list[str]:
    import pkgutil

    import cli

    names = []
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("_") or info.name in _NOT_COMMANDS:
            continue
        names.append(info.name)
    return sorted(names)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({n.replace("_", "-") for n in _command_modules()} | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        mod_name = cmd_name.replace("-", "_")
        if not mod_name.isidentifier() or mod_name.startswith("_") or mod_name in _NOT_COMMANDS:
            return None
        try:  # the module itself, without listing the package (pkgutil): one command runs
            mod = importlib.import_module(f"cli.{mod_name}")
        except ModuleNotFoundError as e:
            if e.name == f"cli.{mod_name}":
                return None
            raise
        cmd = getattr(mod, "command", None)
        return cmd if isinstance(cmd, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        with handle_errors():
            return super().invoke(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MODELREG_DB",
    help="Registry file (default: the platform's user data directory; env MODELREG_DB).",
)
@click.option("--no-truncate", is_flag=True, help="Tables: print every cell whole (no wrapping or cutting).")
@click.version_option(__version__, prog_name="modelreg")
@click.pass_context
def root(ctx: click.Context, db: Path | None, no_truncate: bool) -> None:
    """modelreg: a registry and auditor for image-generation model weights.

    Exit codes: 0 done, 1 findings at or above --fail-on, 2 usage error, 3 runtime failure.
    """
    ctx.obj = App(db_path=db, no_truncate=no_truncate)


def main(argv: list[str] | None = None) -> Any:
    with own_process():  # Ctrl-C after the command: exit 130, not click's "Aborted!" and 1
        return root.main(args=argv, prog_name="modelreg", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
