"""Fixtures shared by the unit tests of the Kubernetes backends."""
import pytest

from tests.support.k8s_emulator import KubeEmulator


@pytest.fixture
def emu():
    """The HTTP-level Kubernetes API stand-in on 127.0.0.1, which the official client talks to."""
    with KubeEmulator() as e:
        yield e
