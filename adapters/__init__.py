"""Platform adapters: each turns platform payloads into invocations and renders replies."""
