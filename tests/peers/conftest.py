"""Peers started once per test session (per xdist worker): the Synapse homeserver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.synapse import Synapse, launch, require_synapse


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """A Synapse with raised rate limits, shared by the Matrix tests of this worker."""
    require_synapse()
    server = launch(tmp_path_factory.mktemp("synapse"))
    yield server
    server.stop()
