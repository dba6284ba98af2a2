"""Use cases: each service method is one transaction and enforces the policy."""
