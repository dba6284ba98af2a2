"""Neutral messages and what Subdesk says: cards, notices, money and dates."""
