import shutil

import pytest


@pytest.fixture(scope="session", autouse=True)
def _needs_prometheus():
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run `make setup` (it apt-installs it)")
