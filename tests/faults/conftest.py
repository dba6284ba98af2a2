"""The peers a fault scenario stops and starts, each its own: a private PostgreSQL cluster
and a private Synapse (no other test loses its database or homeserver)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.faults.world import Cluster, FaultySlack, private_directory
from tests.peers.synapse import Synapse, launch, require_synapse


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    missing = Cluster.missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    found = Cluster(private_directory())
    try:
        found.init()
        yield found
    finally:
        found.remove()


@pytest.fixture
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    require_synapse()
    server = launch(tmp_path_factory.mktemp("synapse"))
    yield server
    server.stop()


@pytest.fixture
async def fake() -> AsyncIterator[FaultySlack]:
    """The fake Slack that can be told to fail (5xx, 429 storms), for the fault tests."""
    slack = FaultySlack()
    await slack.start()
    yield slack
    await slack.stop()
