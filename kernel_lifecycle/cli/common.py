"""Options and helpers shared by the command groups."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Any

import typer

from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.settings import get_settings

JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def default_actor() -> str:
    return get_settings().actor or os.environ.get("USER") or getpass.getuser()


ActorOption = typer.Option(
    None, "--actor", help="Who does this, in embedded mode (default: KL_ACTOR or $USER); refused in team mode."
)


def team_mode() -> bool:
    return bool(get_settings().api_url)


def decide(
    action: str, body: dict[str, Any], *, actor: str | None, here: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run a deciding action. Team mode (``KL_API_URL``): a request to the lifecycle service, which
    acts as the principal your MLflow credentials prove; a typed ``--actor`` is an error there.
    Embedded mode: here, as ``actor`` (default: KL_ACTOR or $USER), through ``here(actor)`` when
    given (in-process extras such as a progress display), else ``service.actions.perform``."""
    settings = get_settings()
    api_url = settings.api_url
    if api_url:
        # a name typed or exported is a claim, not an identity: refused rather than silently ignored
        claimed = f"--actor {actor}" if actor else (f"KL_ACTOR={settings.actor}" if settings.actor else None)
        if claimed:
            raise ConfigurationError(
                f"{claimed} is refused in team mode (KL_API_URL is set): the lifecycle service acts as the "
                f"MLflow user your MLFLOW_TRACKING_USERNAME/PASSWORD prove; {'drop --actor' if actor else 'unset KL_ACTOR'}"
            )
        from kernel_lifecycle.service.client import call

        return call(api_url, action, body)
    who = actor or default_actor()
    if here is not None:
        return here(who)
    from kernel_lifecycle.service.actions import perform

    return perform(action, body, actor=who)


def serve_until_interrupted(server: Any) -> None:
    """Serve (a socketserver or werkzeug server) until Ctrl-C or SIGTERM's KeyboardInterrupt; close it."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
