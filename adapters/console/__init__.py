"""The console adapter: a terminal (or piped stdin) as a chat platform, and the test fake."""
