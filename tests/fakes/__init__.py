"""Protocol-level stand-ins for the services the project talks to (see docs)."""
