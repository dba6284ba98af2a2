"""Email delivery over SMTP."""
