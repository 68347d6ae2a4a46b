"""Pieces every service of the project shares: settings loading, logging, HTTP errors."""
