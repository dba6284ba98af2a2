"""Subdesk: a vendor's subscription tools in chat (Slack, Matrix, console)."""

__version__ = "0.1.0"
