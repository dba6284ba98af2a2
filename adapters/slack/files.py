"""Files shared in Slack, fetched for the core: each one downloaded with the bot token from
its `url_private_download`, only from Slack's own host, never past the attachment limit.

The core decides what it accepts (size, type); this module only keeps the download honest:
a file announced or found larger than the limit is not fetched further, a type the core
would refuse is not fetched at all (the core still says why), redirects are not followed
and a URL on any other host is never asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from adapters import downloads
from adapters.downloads import TooLarge
from bot.commands.invocation import IncomingFile

CHUNK = 64 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


@dataclass(frozen=True, slots=True)
class Shared:
    """A file as a Slack event describes it."""

    name: str
    content_type: str
    size: int
    url: str


def shared(files: object) -> tuple[Shared, ...]:
    """The downloadable files of an event's `files` (hosted by Slack, not tombstoned)."""
    found = []
    for f in files if isinstance(files, list) else ():
        if not isinstance(f, Mapping) or f.get("mode") in ("tombstone", "external"):
            continue
        url = f.get("url_private_download") or f.get("url_private")
        if not isinstance(url, str) or not url:
            continue
        name = str(f.get("name") or f.get("title") or f.get("id") or "file")
        kind = str(f.get("mimetype") or "application/octet-stream")
        size = f.get("size")
        found.append(Shared(name, kind, size if isinstance(size, int) else 0, url))
    return tuple(found)


class NotFetched(downloads.NotFetched):
    """A file that could not be downloaded (foreign host, refused, redirected)."""

    source = "Slack"


def trusted(url: str, api_url: str) -> bool:
    """Whether `url` is on the Web API's host (or a subdomain of it, as `files.slack.com`
    is of `slack.com`), over the same scheme."""
    file, api = urlsplit(url), urlsplit(api_url)
    if file.scheme != api.scheme or not file.hostname or not api.hostname:
        return False
    if file.netloc == api.netloc:
        return True
    host = api.hostname.removeprefix("www.")
    return file.port is None and file.hostname.endswith("." + host)


async def download(files: Sequence[Shared], *, token: str, api_url: str, limit: int,
                   accepted: Sequence[str]) -> tuple[IncomingFile, ...]:
    """Every file's bytes; raises TooLarge or NotFetched for the first that fails."""
    allowed = {t.lower() for t in accepted}
    fetched: list[IncomingFile] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as session:
        for f in files:
            if f.size > limit:
                raise TooLarge(f.name, limit)
            if f.content_type.split(";", 1)[0].strip().lower() not in allowed:
                # the core refuses it by its type, with its own words: no need for the bytes
                fetched.append(IncomingFile(f.name, f.content_type, b""))
                continue
            if not trusted(f.url, api_url):
                raise NotFetched(f.name)
            fetched.append(IncomingFile(f.name, f.content_type,
                                        await _fetch(session, f, limit)))
    return tuple(fetched)


async def _fetch(session: aiohttp.ClientSession, f: Shared, limit: int) -> bytes:
    content = bytearray()
    try:
        async with session.get(f.url, allow_redirects=False) as response:
            if response.status != 200:
                raise NotFetched(f.name)
            async for chunk in response.content.iter_chunked(CHUNK):
                content.extend(chunk)
                if len(content) > limit:
                    raise TooLarge(f.name, limit)
    except (aiohttp.ClientError, TimeoutError):
        raise NotFetched(f.name) from None
    return bytes(content)

