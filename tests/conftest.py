"""Shared fixtures. ``backend`` runs a test once per kernel backend; ``blocked_build`` once per build of the blocked
convolution kernels; ``keep_threads`` restores the thread count; ``offline`` gives a test no network and a fresh
HOME (the CLI and dataset tests use it for every test)."""

import numpy as np
import pytest

import fastnet


@pytest.fixture(params=["numpy", "fast"])
def backend(request):
    """Run the test body under each backend, restoring the previous one afterwards."""
    with fastnet.use_backend(request.param):
        yield request.param


@pytest.fixture(params=("base", "avx2", "avx512"))
def blocked_build(request):
    """Each micro-kernel build of the blocked convolution this CPU runs (AVX-512 runs all three), restored after."""
    from fastnet._kernels.fast import blocked

    ext = blocked._ext
    if request.param not in ext.supported_isas():
        pytest.skip(f"this CPU does not run the {request.param} build")
    before = ext.use_isa(request.param)
    yield request.param
    ext.use_isa(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def keep_threads():
    """Restore fastnet's thread-count state (fixed or automatic) after a test that changes it."""
    from fastnet._kernels import threads

    saved = dict(threads._state)
    yield
    threads._state.update(saved)
    if saved["n"] is not None:
        threads._apply(saved["n"])


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No downloads, an empty HOME (so no dataset cache), no FASTNET_DATA and no FASTNET_DEBUG."""
    monkeypatch.setenv("FASTNET_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTNET_DATA", raising=False)
    monkeypatch.delenv("FASTNET_DEBUG", raising=False)
