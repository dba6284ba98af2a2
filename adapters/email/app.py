"""The email plug-in: outbox emails through the SMTP relay in `SUBDESK_SMTP_URL`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.delivery.ports import Route, Transport
from bot.services.outbox_admin import OutboxAdmin
from bot.wiring.config import Settings
from bot.wiring.runtime import App


class EmailAdapter:
    """Delivers emails; it has no routes and no task of its own."""

    chat = False
    routes: Sequence[Route] = ()

    def __init__(self, transport: Transport, outbox: OutboxAdmin | None = None) -> None:
        self.transport = transport
        self.outbox = outbox

    async def readiness(self) -> str | None:
        """Not ready while email delivery is held for the operator (the relay refused the
        SMTP settings: a wrong password, TLS, the sender), as the outbox records it."""
        if self.outbox is None:
            return None
        return (await self.outbox.held()).get("email")

    @property
    def transports(self) -> Mapping[str, Transport]:
        return {"email": self.transport}

    async def start(self) -> None:
        return None

    async def run(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def plugin(settings: Settings, app: App) -> EmailAdapter | None:
    """SMTP delivery when `SUBDESK_SMTP_URL` is set."""
    if settings.smtp_url is None:
        return None
    from adapters.email.smtp import SmtpTransport

    return EmailAdapter(SmtpTransport(settings.smtp_url.get_secret_value(), settings.mail_from),
                        app.services.outbox)
