"""mammo-breastseg."""

import mammo_common  # noqa: F401  (first: sets the CPU allocator before TensorFlow loads)

__version__ = "0.1.0"
