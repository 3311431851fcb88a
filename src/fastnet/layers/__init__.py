"""fastnet layers (NCHW, float32 by default). Each class lives in a file of its own concept."""
from .base import Layer  # noqa: F401
from .dense import Dense  # noqa: F401
# Helpers append one import line per module below as their module lands.
