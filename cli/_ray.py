"""The ``--ray`` options of scan and audit (the Ray code itself is in registry/distributed.py, imported
only when ``--ray`` is given)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from cli._app import echo_err


def ray_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--ray-window-mib",
        type=click.IntRange(1, None),
        default=8192,
        show_default=True,
        help="With --ray: at most this many MiB of files submitted and not yet committed.",
    )(f)
    f = click.option(
        "--ray-max-tasks",
        type=click.IntRange(0, None),
        default=0,
        show_default=True,
        help="With --ray: at most this many tasks submitted and not yet committed; 0: twice the cluster's CPUs.",
    )(f)
    f = click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="auto",
        default=None,
        metavar="[auto|local|ADDRESS]",
        help="Analyse the files as Ray tasks (the 'ray' extra): 'auto' (the default value) joins the running "
        "cluster (RAY_ADDRESS or `ray start`), ADDRESS is host:port or ray://host:port, 'local' starts a "
        "Ray on this machine for this run. Put PATHS before --ray. The registry is written here, by this process.",
    )(f)
    return f


def check_address(address: str) -> None:
    """A usage error for a --ray value that is no address (often a path: PATHS go before --ray)."""
    from registry.errors import UsageError

    if address not in ("auto", "local") and ":" not in address:
        hint = " (a path? put PATHS before --ray)" if os.path.lexists(address) else ""
        raise UsageError(f"--ray {address!r}: expected auto, local, host:port or ray://host:port{hint}")


def ray_mapper(address: str | None, max_tasks: int, window_mib: int, progress: bool | None, command: str) -> Any:
    """The :class:`registry.distributed.RayMapper` for ``--ray ADDRESS`` (None without --ray)."""
    if address is None:
        return None
    from registry.extras import require

    check_address(address)
    require("ray", f"{command} --ray")
    from registry.distributed import RayMapper

    show = sys.stderr.isatty() if progress is None else progress
    last: list[str] = []

    def on_progress(p: Any) -> None:
        line = p.line()
        last[:] = [line]
        if show:
            echo_err(line)

    def on_retry(path: str, why: str) -> None:
        echo_err(f"modelreg: ray: {path}: task lost ({why}); analysing it again")

    return RayMapper(
        address,
        max_tasks=max_tasks,
        max_bytes=window_mib << 20,
        on_progress=on_progress,
        progress_every_s=10.0,
        on_retry=on_retry,
    )
