"""modelreg serve: a web view of the registry (extra ``serve``)."""

from __future__ import annotations

import click

from cli._app import echo_err, get_app


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --token.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8741, show_default=True, help="Port to listen on.")
@click.option("--token", envvar="MODELREG_TOKEN", metavar="TOKEN",
              help="Every page asks for this token (Authorization: Bearer, or a login form). Also MODELREG_TOKEN.")  # fmt: skip
@click.option("--allow-write", is_flag=True,
              help="Enable the forms that write to the registry (re-checking a declaration); each carries a CSRF token.")  # fmt: skip
def command(host: str, port: int, token: str | None, allow_write: bool) -> None:
    """Serve a web view of the registry: search and list models, every record section of a model with its
    figures, diffs, findings by severity and rule, the event log with verification, exhibit downloads.
    Each page has a JSON twin (?format=json).

    Read-only by default and bound to 127.0.0.1; another address refuses to start without a token.
    Pages opened while a scan writes say "registry busy, retrying" and reload themselves.
    """
    from registry.extras import require

    require("serve", "serve")
    from registry.errors import UsageError
    from registry.web.app import check_bind, create_app

    check_bind(host, token)
    path = get_app().registry_path()
    if not path.exists():
        raise UsageError(f"no registry at {path} (scan something first, or check --db)")
    import uvicorn

    from registry.store.db import connect

    with connect(path, read_only=True, on_wait=echo_err):  # once, before serving: migrates an older registry
        pass

    where = f"[{host}]" if ":" in host else host
    echo_err(f"modelreg serve: {path} at http://{where}:{port}/ ({'read-write' if allow_write else 'read-only'}"
             f"{', token required' if token else ''}); Ctrl-C stops")  # fmt: skip
    uvicorn.run(create_app(path, token=token, allow_write=allow_write), host=host, port=port,
                log_level="warning", server_header=False, proxy_headers=False)  # fmt: skip
