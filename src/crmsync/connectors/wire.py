"""One JSON encoder for every body crmsync sends to a CRM.

msgspec writes a ``Decimal`` as a JSON number from its own digits (``12345678901234567.89`` stays
exactly that; a float round trip would keep ~15 significant digits), writes timezone-aware
datetimes as RFC 3339 and dates as ``YYYY-MM-DD``, and is several times faster than ``json``.
A non-finite Decimal (NaN, Infinity) has no JSON form: it is refused before anything is sent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from crmsync.connectors.base import FatalError

_ENCODER = msgspec.json.Encoder(decimal_format="number")
#: JSON numbers with a fraction or exponent become Decimal from their own digits (money stays exact)
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def encode_body(body: Any) -> bytes:
    """The JSON bytes of an outgoing request body (Decimals exact)."""
    try:
        return _ENCODER.encode(body)
    except (msgspec.EncodeError, TypeError, ValueError) as exc:
        raise FatalError(f"cannot encode the request body: {exc}") from None


def decode_body(data: bytes | str) -> Any:
    """Parse a JSON answer; fractional numbers come back as Decimal. Raises ``msgspec.DecodeError``."""
    return _DECODER.decode(data)
