"""Settings, the runtime that builds the app and its adapters, the scheduler, and the CLI."""
