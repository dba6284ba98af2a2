"""Files shared in Matrix, fetched for the core: downloaded from the bot's own homeserver
(the authenticated media API, with the bot's token), never past the attachment limit, and
decrypted when they were sent in an encrypted room.

The core decides what it accepts (size, type); this module keeps the download honest: a
file announced or found larger than the limit is not fetched further, a type the core would
refuse is not fetched at all (the core still says why), redirects are not followed, and an
`mxc://` URL is only ever asked of the configured homeserver.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

import aiohttp
from nio.crypto.attachments import decrypt_attachment
from nio.exceptions import EncryptionError

from adapters import downloads
from adapters.downloads import TooLarge
from adapters.matrix.inbound import SharedFile
from bot.commands.invocation import IncomingFile

CHUNK = 64 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
_MXC = re.compile(r"^mxc://([A-Za-z0-9.:\-\[\]]{1,255})/([A-Za-z0-9_\-]{1,255})$")


class NotFetched(downloads.NotFetched):
    """A file that could not be downloaded or decrypted."""

    source = "Matrix"


def media_path(url: str) -> str | None:
    """The authenticated download path of an `mxc://server/id` URL; None when malformed."""
    found = _MXC.fullmatch(url)
    if found is None:
        return None
    server, media = found.groups()
    return f"/_matrix/client/v1/media/download/{quote(server, safe='')}/{quote(media)}"


async def download(files: Sequence[SharedFile], *, homeserver: str, token: str, limit: int,
                   accepted: Sequence[str]) -> tuple[IncomingFile, ...]:
    """Every file's bytes, decrypted; raises TooLarge or NotFetched for the first that
    fails."""
    allowed = {t.lower() for t in accepted}
    fetched: list[IncomingFile] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as session:
        for f in files:
            if f.size > limit:
                raise TooLarge(f.name, limit)
            if f.content_type.split(";", 1)[0].strip().lower() not in allowed:
                fetched.append(IncomingFile(f.name, f.content_type, b""))
                continue
            path = media_path(f.url)
            if path is None:
                raise NotFetched(f.name)
            data = await _fetch(session, homeserver.rstrip("/") + path, f.name, limit)
            if f.encryption is not None:
                data = _decrypt(data, f)
            fetched.append(IncomingFile(f.name, f.content_type, data))
    return tuple(fetched)


async def _fetch(session: aiohttp.ClientSession, url: str, name: str, limit: int) -> bytes:
    content = bytearray()
    try:
        async with session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise NotFetched(name)
            async for chunk in response.content.iter_chunked(CHUNK):
                content.extend(chunk)
                if len(content) > limit:
                    raise TooLarge(name, limit)
    except (aiohttp.ClientError, TimeoutError):
        raise NotFetched(name) from None
    return bytes(content)


def _decrypt(data: bytes, f: SharedFile) -> bytes:
    """AES-CTR decryption of an encrypted attachment, its SHA-256 checked first."""
    spec = f.encryption or {}
    key, hashes = spec.get("key"), spec.get("hashes")
    if not isinstance(key, dict) or not isinstance(hashes, dict):
        raise NotFetched(f.name)
    try:
        plain = decrypt_attachment(data, str(key["k"]), str(hashes["sha256"]), str(spec["iv"]))
    except (KeyError, EncryptionError, ValueError, TypeError):
        raise NotFetched(f.name) from None
    return bytes(plain)
