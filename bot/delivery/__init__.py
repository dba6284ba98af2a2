"""Outbound delivery: the outbox dispatcher, queued intents, and the transport and adapter
contract."""
