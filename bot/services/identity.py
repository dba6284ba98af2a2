"""Who is talking: resolving chat accounts to people, and linking them with proof (SPEC §4)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from bot.commands.invocation import Sender
from bot.domain import Actor, ContactRole, Platform, StaffMember, StaffRole
from bot.emails import normalize_email
from bot.presentation import notices
from bot.presentation.messages import command
from bot.services import link_limits as limits
from bot.services.base import Denied, Invalid, NotFound, Service, Tx
from bot.services.contacts import checked_name
from storage.identities import LinkCode, Owner

ACCOUNT_ID_MAX = 255  # Matrix ids have at most 255 characters; the identity columns match


def checked_account(platform: Platform, workspace: str, user_id: str) -> None:
    """Refuse a chat account whose ids are longer than any real one (and than the columns)."""
    for what, value in (("workspace", workspace), ("user id", user_id)):
        if len(value) > ACCOUNT_ID_MAX:
            raise Invalid(f"The {platform.value} {what} is too long ({len(value)} characters; "
                          f"at most {ACCOUNT_ID_MAX}).")


def hash_code(code: str, salt: str) -> str:
    """A slow salted hash: a leaked table does not give the six digits away cheaply."""
    digest = hashlib.scrypt(code.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=32)
    return digest.hex()


async def resolve_actor(tx: Tx, sender: Sender) -> Actor:
    """The person behind a sender: by trusted email (console `--as`) or by linked identity."""
    if sender.asserted_email:
        owner = await tx.identities.owner_of_email(sender.asserted_email)
    else:
        owner = await tx.identities.owner_of_account(
            sender.platform.value, sender.workspace, sender.user_id
        )
    return actor_of(owner)


def actor_of(owner: Owner | None) -> Actor:
    if owner is None:
        return Actor()
    if owner.staff is not None:
        return Actor(staff=owner.staff, identity=owner.identity)
    if owner.contact is None:
        return Actor()
    sole = owner.org_contacts == 1 and ContactRole.MAIN in owner.contact.roles
    return Actor(
        contact=owner.contact, org=owner.org, sole_contact=sole, identity=owner.identity
    )


async def _linked_owner(
    tx: Tx, platform: str, workspace: str, user_id: str
) -> dict[str, object] | None:
    """Who a chat account is linked to now, as an audit snapshot (None when unlinked)."""
    identity = await tx.identities.identity(platform, workspace, user_id)
    if identity is None:
        return None
    if identity.contact_id is not None:
        contact = await tx.directory.contact(identity.contact_id)
        if contact is not None:
            return {"email": contact.email, "contact": contact.name, "org_id": contact.org_id}
    if identity.staff_id is not None:
        staff = await tx.directory.staff(identity.staff_id)
        if staff is not None:
            return {"email": staff.email, "staff": staff.name}
    return None


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    linked: bool
    text: str


class IdentityService(Service):
    """Who a sender is, and linking chat accounts to contacts and staff members."""

    async def actor(self, sender: Sender) -> Actor:
        async with self.read() as tx:
            return await resolve_actor(tx, sender)

    async def link(self, sender: Sender, email: str | None) -> LinkOutcome:
        """Start (or, with a platform-verified email, finish) linking this chat account."""
        if sender.platform is Platform.CONSOLE and sender.asserted_email:
            raise Invalid("This console session already acts as that person; nothing to link.")
        if sender.verified_email and (email is None or email == sender.verified_email.lower()):
            return await self._link_verified(sender, sender.verified_email.lower())
        if email is None:
            raise Invalid("Give the email your organization designated: "
                          + command("subdesk link EMAIL"))
        minutes = self.settings.link_code_ttl_minutes
        neutral = LinkOutcome(
            False,
            f"If {email} belongs to a designated contact, a 6-digit code is on its way there. "
            f"Reply with {command('subdesk link verify CODE')} within {minutes} minutes.",
        )
        async with self.tx() as tx:
            # The account's limits count every request, whatever the email: telling them
            # reveals nothing about which addresses are contacts.
            account = limits.account_scope(sender.platform.value, sender.workspace,
                                           sender.user_id)
            refusal = await limits.send_refusal(tx, self.settings, account)
            if refusal is not None:
                return LinkOutcome(False, f"No new code for this account: {refusal}.")
            await tx.link_events.record([account], limits.SENT)
            contacts = await tx.directory.contacts_with_email(email)
            if not contacts:
                hash_code("000000", secrets.token_hex(16))  # the same work, the same time
                return neutral
            person = limits.contact_scope(contacts[0].id)
            if await limits.send_refusal(tx, self.settings, person) is not None:
                return neutral  # a contact's limits are never told: no mail, same answer
            await tx.link_events.record([person], limits.SENT)
            code = f"{secrets.randbelow(1_000_000):06d}"
            salt = secrets.token_hex(16)
            await tx.identities.put_link_code(
                sender.platform.value,
                sender.workspace,
                sender.user_id,
                contact_id=contacts[0].id,
                code_hash=hash_code(code, salt),
                salt=salt,
                attempts=self.settings.link_code_attempts,
                expires_at=tx.now + dt.timedelta(minutes=minutes),
            )
            await self.notifier.email(
                tx,
                email,
                f"link-code:{sender.platform.value}:{sender.workspace}:{sender.user_id}:{salt}",
                notices.link_code(code, minutes, sender.platform.value),
                recipient=f"{contacts[0].name} <{email}>",
            )
        return neutral

    async def verify(self, sender: Sender, code: str) -> LinkOutcome:
        """Check a link code. A wrong, expired or missing code gets one answer, counted
        against the account the same way, so it never tells whether an email is a contact's."""
        key = (sender.platform.value, sender.workspace, sender.user_id)
        async with self.tx() as tx:
            account = limits.account_scope(*key)
            until = await limits.locked_until(tx, self.settings, account)
            if until is not None:
                return LinkOutcome(False, "Too many wrong codes from this account: try again "
                                   f"in {limits.wait_text(until - tx.now)}.")
            pending = await tx.identities.link_code(*key)
            usable = (pending is not None and pending.expires_at > tx.now
                      and pending.attempts_left > 0)
            # Hash even without a code, so the time taken tells nothing either.
            digest = hash_code(code, pending.salt if pending else secrets.token_hex(16))
            if pending is None or not usable or not hmac.compare_digest(digest,
                                                                        pending.code_hash):
                return await self._wrong_code(tx, key, account, pending, usable)
            await tx.identities.drop_link_code(*key)
            contact = await tx.directory.contact(pending.contact_id)
            if contact is None:
                return LinkOutcome(False, "That contact no longer exists.")
            previous = await _linked_owner(tx, *key)
            await tx.identities.link(*key, contact_id=contact.id)
            await tx.directory.audit(
                f"{contact.name} <{contact.email}>", contact.org_id, "identity.linked",
                ":".join(key), previous, {"contact": contact.email, "proof": "email-code"},
            )
            org = await tx.directory.org(contact.org_id)
            return LinkOutcome(True, f"Linked: you are {contact.name} <{contact.email}> of "
                               f"{org.name if org else '?'}.")

    async def _wrong_code(
        self, tx: Tx, key: tuple[str, str, str], account: str, pending: LinkCode | None,
        usable: bool,
    ) -> LinkOutcome:
        scopes = [account]
        if pending is not None:
            scopes.append(limits.contact_scope(pending.contact_id))
            if usable and pending.attempts_left > 1:
                await tx.identities.spend_link_attempt(*key)
            else:
                await tx.identities.drop_link_code(*key)
        await tx.link_events.record(scopes, limits.FAILED)
        left = await limits.guesses_left(tx, self.settings, account)
        lockout = self.settings.link_lockout_minutes
        if left <= 0:
            return LinkOutcome(
                False, "That code is not valid, and this account must wait "
                f"{lockout} minutes before trying again; then ask for a new code: "
                + command("subdesk link EMAIL")
            )
        return LinkOutcome(
            False, f"That code is not valid (wrong, expired or never sent); {left} more "
            f"attempt{'s' if left != 1 else ''} before this account must wait {lockout} minutes. "
            "A new code: " + command("subdesk link EMAIL")
        )

    async def _link_verified(self, sender: Sender, email: str) -> LinkOutcome:
        async with self.tx() as tx:
            staff = await tx.directory.staff_by_email(email)
            contacts = await tx.directory.contacts_with_email(email)
            key = (sender.platform.value, sender.workspace, sender.user_id)
            previous = await _linked_owner(tx, *key)
            if contacts:
                await tx.identities.link(*key, contact_id=contacts[0].id)
                name = contacts[0].name
            elif staff is not None:
                await tx.identities.link(*key, staff_id=staff.id)
                name = staff.name
            else:
                raise Denied(
                    f"Your verified email {email} is not a designated contact. Ask your "
                    "Main Contact to designate you."
                )
            await tx.directory.audit(name, contacts[0].org_id if contacts else None,
                                     "identity.linked", ":".join(key), previous,
                                     {"email": email, "proof": "platform-verified-email"})
            return LinkOutcome(True, f"Linked: you are {name} <{email}>.")

    async def unlink(self, sender: Sender) -> bool:
        """Unlink this chat account; audited with whom it was linked to."""
        key = (sender.platform.value, sender.workspace, sender.user_id)
        async with self.tx() as tx:
            previous = await _linked_owner(tx, *key)
            done = await tx.identities.unlink(*key)
            if done and previous is not None:
                org_id = previous.get("org_id")
                await tx.directory.audit(str(previous["email"]),
                                         org_id if isinstance(org_id, int) else None,
                                         "identity.unlinked", ":".join(key), previous, None)
            return done

    # Vendor-side (CLI) -----------------------------------------------------------------

    async def admin_link(self, email: str, platform: Platform, workspace: str, user_id: str,
                         *, force: bool = False) -> str:
        """Link a chat account by an admin's word (`subdesk link`).

        An account already linked to someone else moves only with `force`, and the audit
        entry names its previous owner.
        """
        checked_account(platform, workspace, user_id)
        async with self.tx() as tx:
            staff = await tx.directory.staff_by_email(email)
            contacts = await tx.directory.contacts_with_email(email)
            account = f"{platform.value}:{workspace}:{user_id}"
            previous = await _linked_owner(tx, platform.value, workspace, user_id)
            if previous is not None and previous["email"] != email.lower() and not force:
                raise Invalid(
                    f"{platform.value} {user_id} is already linked to {previous['email']}; "
                    "add --force to move it."
                )
            if contacts:
                await tx.identities.link(platform.value, workspace, user_id,
                                        contact_id=contacts[0].id)
                who = contacts[0].name
                org_id: int | None = contacts[0].org_id
            elif staff is not None:
                await tx.identities.link(platform.value, workspace, user_id, staff_id=staff.id)
                who, org_id = staff.name, None
            else:
                raise NotFound(f"No contact or staff member has the email {email}.")
            await tx.directory.audit("cli", org_id, "identity.linked", account, previous,
                                     {"email": email, "proof": "admin"})
            if previous is not None and previous.get("org_id") not in (None, org_id):
                await tx.directory.audit("cli", int(str(previous["org_id"])),
                                         "identity.moved", account, previous,
                                         {"email": email, "proof": "admin"})
            return who

    async def add_staff(
        self,
        email: str,
        roles: list[StaffRole],
        name: str = "",
        links: list[tuple[Platform, str, str]] | None = None,
    ) -> StaffMember:
        """Add a vendor staff member, or give an existing one more roles.

        A customer contact's email is refused: one email is one person, and a staff member
        would shadow the contact everywhere the email identifies them.
        """
        try:
            email = normalize_email(email)
        except ValueError as exc:
            raise Invalid(f"{email[:300]!r} is {exc}") from None
        name = checked_name(name) or ""
        for platform, workspace, user_id in links or []:
            checked_account(platform, workspace, user_id)
        async with self.tx() as tx:
            if await tx.directory.contacts_with_email(email):
                raise Invalid(
                    f"{email} is a customer contact; vendor staff need their own email."
                )
            for platform, workspace, user_id in links or []:
                previous = await _linked_owner(tx, platform.value, workspace, user_id)
                if previous is not None and previous["email"] != email:
                    raise Invalid(
                        f"{platform.value} {user_id} is already linked to {previous['email']}; "
                        f"move it with `subdesk link {email} --force` once the staff member "
                        "exists."
                    )
            member = await tx.directory.upsert_staff(email, name, roles)
            for platform, workspace, user_id in links or []:
                await tx.identities.link(platform.value, workspace, user_id, staff_id=member.id)
            await tx.directory.audit("cli", None, "staff.upsert", email, None,
                                     {"roles": sorted(r.value for r in member.roles)})
            return member
