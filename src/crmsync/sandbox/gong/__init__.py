"""The Gong simulator (public API v2: users, calls, calls/extensive) over the seeded World."""

from crmsync.sandbox.gong.simulator import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    GongSimulator,
    gong_knobs,
)

__all__ = ["DEFAULT_ACCESS_KEY", "DEFAULT_ACCESS_SECRET", "GongSimulator", "gong_knobs"]
