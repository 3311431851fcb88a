"""Shared fixtures. ``backend`` runs a test once per kernel backend."""

import numpy as np
import pytest

import fastnet


@pytest.fixture(params=["numpy", "fast"])
def backend(request):
    """Run the test body under each backend, restoring the previous one afterwards."""
    with fastnet.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
