"""What the client commands' click declarations need, and nothing more: the `--master` option
and its defaults, the defaults of `mezzo run`'s options, and `friendly_errors` (one-line errors).

The click command modules (`inspect`, `logs`, `run`, `exec`) import this at their top and
the machinery of their command (`mezzo.cli.common`'s HTTP, `tables`, `one_task`,
`exec_session`) when the command runs: `mezzo <command> --help` imports click and this module,
not sockets, JSON or URL parsing. `mezzo.cli.common` re-exports these names.
"""

from __future__ import annotations

import functools

from mezzo.core.errors import MezzoError

# Typing names for the checker only: importing `typing` costs `mezzo run` start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MASTER = "127.0.0.1:5050"
MASTER_ENV = "MEZZO_MASTER"
# `mezzo run`'s defaults (the click command and its click-free parser, `mezzo.cli.one_task`).
DEFAULT_RESOURCES = "cpus:0.1;mem:32"
DEFAULT_FRAMEWORK_NAME = "mezzo-run"


def master_option(fn: F) -> F:
    """`--master HOST:PORT | zk://…` (env MEZZO_MASTER, default 127.0.0.1:5050)."""
    import click

    return click.option(
        "--master",
        envvar=MASTER_ENV,
        default=DEFAULT_MASTER,
        show_default=True,
        metavar="HOST:PORT|zk://HOSTS/PATH",
        help="The master (or any master of an HA cluster, or its ZooKeeper URL).",
    )(fn)


def error_message(exc: Exception) -> str:
    """The one line a failure is reported with (after `error: `)."""
    if isinstance(exc, MezzoError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def friendly_errors(fn: F) -> F:
    """Turn `CliError` and unexpected exceptions into one-line errors, exit status 1 (click's
    own exceptions pass through)."""
    import click

    class Failure(click.ClickException):
        exit_code = 1

        def show(self, file: Any = None) -> None:
            click.echo(f"error: {self.format_message()}", err=True)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            raise Failure(error_message(exc)) from None

    return wrapper  # type: ignore[return-value]
