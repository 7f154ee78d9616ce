"""kernel-lifecycle: versioned cognitive kernels with boundary-tested promotion.

Nothing is built or connected at import time; see ``settings.get_settings``.
"""

__version__ = "0.1.0"
