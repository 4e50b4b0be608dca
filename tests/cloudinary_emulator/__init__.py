"""An in-memory emulator of the parts of Cloudinary's public API this project uses.

The unmodified ``cloudinary`` SDK and django-cloudinary-storage talk to it over real HTTP on
127.0.0.1; see :class:`CloudinaryEmulator` and the pytest fixtures in ``fixtures.py``.
"""

from .account import MediaLimits
from .emulator import CloudinaryEmulator
from .faults import EndpointKind, FaultKind, FaultRule
from .store import StoredResource

__all__ = ["CloudinaryEmulator", "EndpointKind", "FaultKind", "FaultRule", "MediaLimits", "StoredResource"]
