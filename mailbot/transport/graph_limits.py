"""What Microsoft Graph takes in one request, and how each attachment of a draft is sent
(pure).

Microsoft's "Attach large files to Outlook messages or events" and the reference pages of
`message: add attachment` and `attachment: createUploadSession` say:

    under 3 MB            one POST to the draft's attachments (a fileAttachment, base64)
    3 MB to 150 MB        an upload session (createUploadSession), then PUTs of byte ranges,
                          "up to 4 MB each time", in order; refused under 3 MB with
                          ErrorAttachmentSizeShouldNotBeLessThanMinimumSize
    every request         at most 4 MB ("The maximum request length supported is 4MB", 413)

They never say whether a MB is 1,000,000 or 1,048,576 bytes. The 4 MB request limit is
ASP.NET's default `maxRequestLength` of 4096 KB (4,194,304 bytes), which its wording is; and
it must be, for the documented POST of a file just under 3 MB to fit once base64 has added a
third. For the 3 MB threshold both readings are kept possible:

    size < 3,000,000             POST: under 3 MB either way (its base64 body, at most
                                 4,000,000 bytes and the JSON around it, fits in 4,194,304)
    size >= 3,145,728            upload session: 3 MB or more either way
    3,000,000 <= size < 3 MiB    an upload session first; if Graph answers that the file is
                                 under its minimum, a POST, as long as its body fits (up to
                                 about 3,145,600 bytes: the last hundred bytes or so under
                                 3 MiB fit neither way where Graph counts 3 MB as 3 MiB, and
                                 the message fails with Graph's refusal)

Chunks of an upload session are 3,932,160 bytes (12 times 320 KiB): under 4 MB by either
reading, and a multiple of the 320 KiB that Graph's other upload sessions (OneDrive) ask for.
"""

from __future__ import annotations

from typing import Literal

# Graph's largest request body, in bytes (4 MB as ASP.NET counts it: 4096 KB).
REQUEST_LIMIT = 4 * 1024 * 1024
# Under 3 MB whether a MB is 10^6 or 2^20 bytes: a POST to the draft's attachments.
POST_BELOW = 3_000_000
# 3 MB or more either way: an upload session only.
UPLOAD_FROM = 3 * 1024 * 1024
# The most an upload session takes ("up to 150 MB": the smaller reading).
UPLOAD_MAX = 150_000_000
# The bytes of one PUT of an upload session.
UPLOAD_CHUNK = 12 * 320 * 1024
# Graph's answer to an upload session for a file under its 3 MB.
TOO_SMALL_FOR_UPLOAD = "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"

Route = Literal["post", "upload", "upload_else_post", "impossible"]


def base64_length(size: int) -> int:
    """The length of `size` bytes in base64, without line breaks."""
    return 4 * ((size + 2) // 3)


def mime_fits(size: int, max_bytes: int) -> bool:
    """Whether a message of `size` bytes of MIME goes as one draft (its MIME in base64, one
    request under the limit) rather than without its attachments, which follow one by one."""
    return size <= max_bytes and base64_length(size) < REQUEST_LIMIT


def attachment_route(size: int, post_bytes: int, upload_sessions: bool) -> Route:
    """How an attachment of `size` bytes is added to a draft, when its POST would be
    `post_bytes` of request and the deployment does or does not offer upload sessions."""
    post_fits = post_bytes <= REQUEST_LIMIT
    if size < POST_BELOW and post_fits:
        return "post"
    if size > UPLOAD_MAX:
        return "impossible"
    if size >= UPLOAD_FROM:
        return "upload" if upload_sessions else "impossible"
    # 3,000,000 to 3,145,727 bytes: 3 MB or more, or under 3 MB, by the reading.
    if upload_sessions:
        return "upload_else_post" if post_fits else "upload"
    return "post" if post_fits else "impossible"


def byte_ranges(size: int, chunk: int = UPLOAD_CHUNK) -> list[tuple[int, int]]:
    """The (first, last) byte of each PUT of an upload session, in order."""
    return [(start, min(start + chunk, size) - 1) for start in range(0, size, chunk)]


def content_range(first: int, last: int, size: int) -> str:
    return f"bytes {first}-{last}/{size}"
