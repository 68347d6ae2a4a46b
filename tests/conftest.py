"""Suite-wide setup: our structlog pipeline, as every service configures it at start-up."""

from __future__ import annotations

from common import logs

# structlog lines become stdlib records, so pytest's caplog sees them with their fields
logs.configure_structlog()

# shared fixtures of the protocol stand-ins
from tests.fakes.livekit_server import livekit_server  # noqa: E402,F401
from tests.fakes.openai_realtime import realtime_server_fixture  # noqa: E402,F401
