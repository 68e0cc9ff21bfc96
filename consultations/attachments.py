"""Ticket attachments: an extension whitelist, the real type from the file's magic bytes (the `filetype`
library), a size cap, and storage outside the web root under a random name."""

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import filetype
from django.conf import settings
from django.core.exceptions import ValidationError

# extension -> the MIME types its magic bytes may show; None: text, which has no magic bytes.
ALLOWED = {
    "pdf": {"application/pdf"},
    "png": {"image/png"},
    "jpg": {"image/jpeg"},
    "jpeg": {"image/jpeg"},
    "gif": {"image/gif"},
    "webp": {"image/webp"},
    "zip": {"application/zip"},
    "txt": None,
    "log": None,
    "csv": None,
}
MAX_BYTES = 10 * 1024 * 1024
HEAD_BYTES = 8192


@dataclass(frozen=True)
class CheckedFile:
    original_name: str
    content_type: str
    size: int


def attachment_check(upload) -> CheckedFile:
    """Raise ValidationError (in words for the customer) unless the upload is an allowed, honest file."""
    name = Path(upload.name or "").name
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in ALLOWED:
        allowed = ", ".join(sorted(ALLOWED))
        raise ValidationError(f"“{name}”: this kind of file cannot be attached. Allowed: {allowed}.")
    if upload.size > MAX_BYTES:
        limit_mb = MAX_BYTES // 1024 // 1024
        raise ValidationError(
            f"“{name}” is {upload.size / 1024 / 1024:.1f} MB; attachments can be at most {limit_mb} MB."
        )
    if upload.size == 0:
        raise ValidationError(f"“{name}” is empty.")
    upload.seek(0)
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    detected = filetype.guess(head)
    expected = ALLOWED[extension]
    if expected is None:
        # Text: no magic bytes of any known binary type, no NUL bytes, and valid UTF-8.
        if detected is not None or b"\x00" in head:
            raise ValidationError(f"“{name}” is not a text file, whatever its name says.")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
                raise ValidationError(f"“{name}” is not a UTF-8 text file.") from exc
        return CheckedFile(original_name=name, content_type="text/plain", size=upload.size)
    if detected is None or detected.mime not in expected:
        found = f"a {detected.extension} file" if detected else "not a recognisable file"
        raise ValidationError(f"“{name}” is {found}, not .{extension} as its name says.")
    return CheckedFile(original_name=name, content_type=detected.mime, size=upload.size)


def attachment_store(upload) -> tuple[str, str]:
    """Write the upload under a random name in TICKET_ATTACHMENT_DIR; returns (stored name, sha256)."""
    directory = Path(settings.TICKET_ATTACHMENT_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stored_name = secrets.token_hex(24)
    digest = hashlib.sha256()
    with open(directory / stored_name, "xb") as handle:
        for chunk in upload.chunks():
            digest.update(chunk)
            handle.write(chunk)
    return stored_name, digest.hexdigest()


def attachment_path(stored_name: str) -> Path:
    return Path(settings.TICKET_ATTACHMENT_DIR) / stored_name
