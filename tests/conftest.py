"""Suite-wide setup: our structlog pipeline, as every service configures it at start-up."""

from __future__ import annotations

from common import logs

# structlog lines become stdlib records, so pytest's caplog sees them with their fields
logs.configure_structlog()
