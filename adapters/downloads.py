"""What goes wrong when a chat platform's shared file is fetched, told the same way on
every platform: too large for the core's limit, or not fetched at all."""

from __future__ import annotations


class TooLarge(Exception):
    """A file over the size limit; nothing of it is stored."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(name)
        self.name, self.limit = name, limit

    def message(self) -> str:
        size = (f"{self.limit / (1024 * 1024):.1f} MB" if self.limit >= 1024 * 1024
                else f"{self.limit} bytes")
        return f"{self.name} is larger than the limit of {size}. Nothing was stored."


class NotFetched(Exception):
    """A file that could not be downloaded; `source` names the platform it was on."""

    source = "the chat platform"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def message(self) -> str:
        return f"{self.name} could not be fetched from {self.source}. Nothing was stored."
