"""SMTP transport for outbox emails (`SUBDESK_SMTP_URL`).

URL forms: `smtp://[user:pass@]host[:port]` (STARTTLS when offered),
`smtp+plain://…` (never STARTTLS; local relays and tests), `smtps://…` (implicit TLS).
Each email's Message-ID derives from its outbox row, so a resend after a crash is
recognisably the same message to the receiving side.
"""

from __future__ import annotations

import hashlib
import html
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTPUTF8
from email.utils import formataddr, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from adapters.console.render import PREFIX, render
from bot.delivery.ports import DeliveryError, FailureKind
from bot.domain import MessageRef
from bot.presentation.messages import Message, prefix_for
from storage.outbox import OutboxItem


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    implicit_tls: bool
    starttls: bool | None  # None: use it when the server offers it

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps", "smtp+plain", "smtp+starttls"):
            raise ValueError("SUBDESK_SMTP_URL must start with smtp://, smtps:// or smtp+plain://")
        implicit = scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
            starttls={"smtp+plain": False, "smtp+starttls": True}.get(scheme),
        )


# Authentication required (530), too weak (534), credentials invalid (535), needs
# encryption (538): the operator must fix the settings, retrying alone cannot help.
_AUTH_CODES = frozenset({530, 534, 535, 538})


def _configuration(reason: str) -> DeliveryError:
    return DeliveryError(reason, kind=FailureKind.CONFIGURATION)


def _one_line(text: str) -> str:
    """Header text on one line: names and subjects are user data and may hold newlines."""
    return " ".join(text.split())


def build_email(item: OutboxItem, message: Message, sender: str) -> EmailMessage:
    message = message.resolved(prefix_for(message.commands_for) if message.commands_for
                               else PREFIX)
    if item.target.isascii():
        email = EmailMessage()
        name, address = parseaddr(_one_line(item.recipient))
        to = formataddr((name, item.target)) if address == item.target else item.target
    else:  # an international address (josé@bücher.example): sent with SMTPUTF8
        email, to = EmailMessage(policy=SMTPUTF8), item.target
    email["From"] = sender
    email["To"] = to
    email["Subject"] = _one_line(message.email_subject)
    digest = hashlib.sha256(item.key.encode()).hexdigest()[:24]
    domain = parseaddr(sender)[1].partition("@")[2] or "subdesk.invalid"
    email["Message-ID"] = f"<{digest}.{item.id}@{domain}>"
    email["X-Subdesk-Outbox"] = str(item.id)
    if item.thread is not None:  # a later message of a thread: mail clients group them
        email["In-Reply-To"] = item.thread.id
        email["References"] = item.thread.id
    body = render(message)
    email.set_content(body)
    email.add_alternative(
        "<html><body><pre style=\"font-family: sans-serif; white-space: pre-wrap\">"
        f"{html.escape(body)}</pre></body></html>",
        subtype="html",
    )
    return email


class SmtpTransport:
    platform = "email"

    def __init__(self, url: str, sender: str, *, timeout: float = 30.0) -> None:
        self.target = SmtpTarget.from_url(url)
        self.sender = sender
        self.timeout = timeout

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        email = build_email(item, message, self.sender)
        t = self.target
        try:
            await aiosmtplib.send(
                email,
                hostname=t.host,
                port=t.port,
                username=t.username,
                password=t.password,
                use_tls=t.implicit_tls,
                start_tls=t.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = {r.code for r in exc.recipients}
            if codes & _AUTH_CODES:
                raise _configuration(
                    f"SMTP {min(codes)}: the server wants authentication") from exc
            if all(500 <= code < 600 for code in codes):
                raise DeliveryError(f"SMTP {min(codes)}: recipient refused",
                                    permanent=True) from exc
            # 421/450/451/452: the server cannot take it now (greylisting, a full
            # mailbox, an outage): another attempt later may well succeed.
            raise DeliveryError(f"SMTP {min(codes)}: recipient deferred") from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise _configuration(f"SMTP {exc.code}: authentication failed; check the user "
                                 "name and password in SUBDESK_SMTP_URL") from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            if 500 <= exc.code < 600:
                raise _configuration(f"SMTP {exc.code}: the sender SUBDESK_MAIL_FROM "
                                     "is refused") from exc
            raise DeliveryError(f"SMTP {exc.code}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code in _AUTH_CODES:
                raise _configuration(f"SMTP {exc.code}: the server wants authentication "
                                     "or encryption; check SUBDESK_SMTP_URL") from exc
            permanent = 500 <= exc.code < 600
            raise DeliveryError(f"SMTP {exc.code}", permanent=permanent) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            if not item.target.isascii():  # this address only: the others go on
                raise DeliveryError("SMTP relay takes no international addresses (SMTPUTF8)",
                                    permanent=True) from exc
            raise _configuration("SMTP server does not support what SUBDESK_SMTP_URL asks "
                                 "for (STARTTLS or AUTH)") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
                raise _configuration("SMTP TLS failed (certificate or TLS mode); check "
                                     "SUBDESK_SMTP_URL") from exc
            # No session with the relay (refused, timed out, cut): every message waits
            # for it, and none uses up its attempts meanwhile.
            raise DeliveryError(f"SMTP unavailable ({type(exc).__name__})",
                                kind=FailureKind.UNREACHABLE) from exc
        return MessageRef(item.target, str(email["Message-ID"]))
