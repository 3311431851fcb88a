"""fastnet layers (NCHW, float32 by default). Each class lives in a file of its own concept."""

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh  # noqa: F401
from .base import Layer  # noqa: F401
from .conv import Conv2D  # noqa: F401
from .dense import Dense  # noqa: F401
from .dropout import Dropout  # noqa: F401
from .merge import Add, Concatenate, Multiply  # noqa: F401
from .norm import BatchNorm1d, BatchNorm2d  # noqa: F401
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D  # noqa: F401
from .reshape import Flatten, Reshape  # noqa: F401
