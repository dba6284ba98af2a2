"""Email address validation shared by imports, commands and settings."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator


def normalize_email(value: str) -> str:
    """A syntactically valid address, lower-cased; `.test`/`.example` domains are allowed.

    Strict: at most 64 characters before the @ and 254 in all (RFC 5321), the longest
    address every column and key is sized for."""
    try:
        info = validate_email(value, check_deliverability=False, test_environment=True,
                              strict=True)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return info.normalized.lower()


Email = Annotated[str, AfterValidator(normalize_email)]
