"""The one HTTP server of SPEC §6: health, readiness and the import API."""
