"""One reading of Retry-After for the media fetcher and the vision client."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from requests.structures import CaseInsensitiveDict

from social_tui_media.media.retry_after import retry_after_seconds


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),  # decimals: our extra, urllib3 refuses them
        ({"retry-after-ms": "250"}, 0.25),  # milliseconds win over seconds
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers, expected):
    assert retry_after_seconds(CaseInsensitiveDict(headers)) == expected


def test_retry_after_http_date_counts_from_now():
    in_a_minute = formatdate(time.time() + 60, usegmt=True)
    assert 55 <= retry_after_seconds(CaseInsensitiveDict({"Retry-After": in_a_minute})) <= 60
    assert retry_after_seconds(CaseInsensitiveDict({"Retry-After": formatdate(0, usegmt=True)})) == 0.0


def test_no_headers_means_no_advice():
    assert retry_after_seconds(None) is None
