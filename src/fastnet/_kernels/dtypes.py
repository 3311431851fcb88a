"""The float dtypes fastnet computes in: every layer, loss, optimizer, dataset loader and kernel
accepts these and no others (float16 has no compiled kernels; integers are not trainable)."""

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
