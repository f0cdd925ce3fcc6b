"""How each attachment goes through Microsoft Graph, by its size, as tables: under 3 MB a POST,
from 3 MB an upload session, and every request under Graph's 4 MB, whether Microsoft's MB is
10^6 or 2^20 bytes."""

from __future__ import annotations

import itertools
from email.message import EmailMessage

import pytest

from mailbot.transport.graph_limits import (
    POST_BELOW,
    REQUEST_LIMIT,
    UPLOAD_CHUNK,
    UPLOAD_FROM,
    attachment_route,
    base64_length,
    byte_ranges,
    content_range,
    mime_fits,
)
from mailbot.transport.graph_sender import attachments_of

MB, MIB = 1_000_000, 1024 * 1024


def with_file(size: int, name: str = "document.pdf") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "renseignements@mri.gouv.qc.ca"
    message["To"] = "citoyen@example.org"
    message.set_content("Bonjour,\n\nVoici le document.\n")
    message.add_attachment(b"\x00" * size, maintype="application", subtype="pdf", filename=name)
    return message


# The JSON around a POSTed file's base64 (its type, name and content type).
ENVELOPE = 200


@pytest.mark.parametrize(
    ("size", "route"),
    [
        (0, "post"),
        (1 * MB, "post"),
        (2_500_000, "post"),
        (2_900_000, "post"),
        (2_999_999, "post"),  # under 3 MB however a MB is counted
        (3_000_000, "upload_else_post"),  # 3 MB, or 2.86 MiB: Graph's reading decides
        (3_100_000, "upload_else_post"),
        (3_145_500, "upload_else_post"),
        # The last bytes under 3 MiB: their POST would be over 4 MiB. An upload session is
        # the only try left (refused where Graph counts 3 MB as 3 MiB: the row fails).
        (3 * MIB - 1, "upload"),
        (3 * MIB, "upload"),  # 3 MB or more however a MB is counted
        (10 * MB, "upload"),
        (150 * MB, "upload"),
        (150 * MB + 1, "impossible"),
    ],
)
def test_the_route_of_an_attachment_by_its_size(size: int, route: str) -> None:
    post_bytes = base64_length(size) + ENVELOPE
    assert attachment_route(size, post_bytes, upload_sessions=True) == route


@pytest.mark.parametrize("size", [0, 2_999_999, 3_000_000, 3_145_500])
def test_the_route_is_read_from_the_real_post_body(size: int) -> None:
    [attachment] = attachments_of(with_file(size), upload_sessions=True)
    assert attachment.route == ("post" if size < POST_BELOW else "upload_else_post")
    assert len(attachment.post_body) <= base64_length(size) + ENVELOPE


@pytest.mark.parametrize(
    ("size", "route"),
    [
        (2_999_999, "post"),
        (3_100_000, "post"),  # under 3 MiB: a POST is the only way, and it fits
        (3 * MIB, "impossible"),  # US Government L4/L5: no upload sessions
    ],
)
def test_without_upload_sessions_only_posts_remain(size: int, route: str) -> None:
    post_bytes = base64_length(size) + ENVELOPE
    assert attachment_route(size, post_bytes, upload_sessions=False) == route


def test_every_post_under_3_mb_fits_in_one_request_whatever_its_name() -> None:
    [attachment] = attachments_of(with_file(POST_BELOW - 1, "é" * 200 + ".pdf"), True)
    assert attachment.route == "post"
    assert len(attachment.post_body) <= REQUEST_LIMIT


def test_a_post_that_would_not_fit_goes_by_upload_session() -> None:
    assert attachment_route(3_100_000, REQUEST_LIMIT + 1, upload_sessions=True) == "upload"
    assert attachment_route(3_100_000, REQUEST_LIMIT + 1, upload_sessions=False) == "impossible"


@pytest.mark.parametrize("size", [UPLOAD_FROM, 10 * MB, 150 * MB])
def test_upload_chunks_are_in_order_and_each_under_4_mb_either_way(size: int) -> None:
    ranges = byte_ranges(size)
    assert ranges[0][0] == 0 and ranges[-1][1] == size - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    assert all(last - first + 1 <= min(4 * MB, 4 * MIB) for first, last in ranges)
    assert UPLOAD_CHUNK % (320 * 1024) == 0
    assert content_range(*ranges[0], size) == f"bytes 0-{ranges[0][1]}/{size}"


@pytest.mark.parametrize(
    ("size", "fits"),
    [
        (1024, True),
        (3 * MIB - 3, True),  # 4,194,300 bytes of base64: under the limit
        (3 * MIB, False),  # 4,194,304 bytes of base64: not under it
        (4 * MB, False),
    ],
)
def test_a_mime_draft_only_when_its_base64_is_under_the_limit(size: int, fits: bool) -> None:
    assert mime_fits(size, 3 * MIB) is fits
    if fits:
        assert base64_length(size) < REQUEST_LIMIT
