"""Deal mirroring between CRMs: pure planning (``plan``), keys (``keys``) and the glue (``runner``)."""

from __future__ import annotations
