"""uvicorn `--factory` targets for a build without `dealreg serve`: each service from the environment."""

from __future__ import annotations

from services.settings import Settings


def registration():
    from services.registration.app import bootstrap

    return bootstrap(Settings.from_env())


def conflict():
    from services.conflict.app import bootstrap

    return bootstrap(Settings.from_env())
