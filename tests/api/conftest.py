"""The fixture shared by the buyer-API test modules: ``api_env``, one demo network with an API
process in front of it for the whole ``tests/api`` package (built once, torn down after the
package's last test). The modules run in file order and share its chain: each test makes its
own jobs and asserts on counts it measured itself, never on the absolute state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.api import ApiEnv, api_env_running


@pytest.fixture(scope="package")
def api_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env_running(tmp_path_factory.mktemp("api")) as env:
        yield env
