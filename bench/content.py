"""Deterministic benchmark content: media served by the loopback CDN, and the posts that use it.

Every file begins like the real thing (a JPEG from `sample_media`, or a real MP4) so the
cache's magic-byte sniffing and dimension probing treat it as media; the rest of a file's
size is the server's fixed filler (`streamed_size`), so gigabytes never sit in memory.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.media_server import MediaTestServer, sample_media

IMAGE_PATH = "/dms/image/v2/{id}/feedshare-shrink_2048_1536/{id}/0/{ms}"
VIDEO_PATH = "/playlist/vid/v2/{id}/mp4-720p-30fp-crf28/{id}/0/{ms}"
EXPIRES_IN = 7 * 24 * 3600


@dataclass(frozen=True)
class Media:
    path: str  # URL path on the loopback CDN
    kind: str  # image | video
    size: int  # bytes served
    width: int = 320
    height: int = 240


@dataclass(frozen=True)
class Post:
    urn: str
    media: list[Media]  # images: one (single image) or several (carousel); video: [video, thumbnail]
    shape: str  # image | images | video


def _media_id(rng: random.Random) -> str:
    return "D" + "".join(rng.choice("0123456789ABCDEF") for _ in range(14))


def log_uniform_sizes(rng: random.Random, count: int, low: int, high: int) -> list[int]:
    """`count` sizes spread evenly on a log scale between low and high (many small, some big)."""
    return [int(math.exp(rng.uniform(math.log(low), math.log(high)))) for _ in range(count)]


def sizes_for_total(rng: random.Random, count: int, total: int, spread: float = 0.6) -> list[int]:
    """`count` sizes within ±spread of the mean that add up to exactly `total` bytes."""
    raw = [rng.uniform(1 - spread, 1 + spread) for _ in range(count)]
    scale = total / sum(raw)
    sizes = [int(r * scale) for r in raw]
    sizes[-1] += total - sum(sizes)
    return sizes


def make_image(rng: random.Random, size: int, width: int = 320, height: int = 240) -> Media:
    media_id = _media_id(rng)
    path = IMAGE_PATH.format(id=media_id, ms=1764000000000 + rng.randrange(10**8))
    return Media(path, "image", size, width, height)


def make_video(rng: random.Random, size: int) -> Media:
    media_id = _media_id(rng)
    path = VIDEO_PATH.format(id=media_id, ms=1763000000000 + rng.randrange(10**8))
    return Media(path, "video", size)


def posts_for(media: list[Media], rng: random.Random, urn_base: int = 7391000000000000000) -> list[Post]:
    """Group media into posts the way a feed looks: single images, carousels, videos+thumbnails."""
    posts: list[Post] = []
    queue = list(media)
    videos = [m for m in queue if m.kind == "video"]
    images = [m for m in queue if m.kind == "image"]
    for video in videos:
        thumbnail = images.pop() if images else None
        posts.append(Post("", [video] + ([thumbnail] if thumbnail else []), "video"))
    while images:
        take = 1 if rng.random() < 0.5 else rng.randint(2, 6)
        group, images = images[:take], images[take:]
        posts.append(Post("", group, "image" if len(group) == 1 else "images"))
    rng.shuffle(posts)
    return [Post(f"urn:li:activity:{urn_base + i}", p.media, p.shape) for i, p in enumerate(posts)]


def register(server: MediaTestServer, media: list[Media]) -> None:
    """Serve every medium at its path: real leading bytes, padded to its size."""
    for m in media:
        if m.kind == "video":
            body, content_type = sample_media(m.path)
        else:
            body, content_type = sample_media(m.path, m.width, m.height)
        if m.size > len(body):
            server.add(m.path, body, content_type, streamed_size=m.size)
        else:
            server.add(m.path, body, content_type)


class Signer:
    """Signed CDN query strings; a new Signer is a re-scrape: same paths, new signatures."""

    def __init__(self, seed: int, now: float | None = None) -> None:
        self._rng = random.Random(seed)
        self.expires = int(now or time.time()) + EXPIRES_IN

    def url(self, base_url: str, path: str) -> str:
        signature = f"{self._rng.getrandbits(160):040x}"
        return f"{base_url}{path}?e={self.expires}&v=beta&t={signature}"


def post_json(post: Post, base_url: str, signer: Signer, rng: random.Random) -> dict:
    """A post in the scraper's shape (see samples/), its media URLs signed by `signer`."""
    urls = [signer.url(base_url, m.path) for m in post.media]
    if post.shape == "video":
        media: dict = {"type": "video", "url": urls[0]}
        if len(urls) > 1:
            media["thumbnail"] = urls[1]
    else:
        media = {
            "type": post.shape,
            "url": urls[0],
            "images": [
                {"url": u, "width": m.width, "height": m.height}
                for u, m in zip(urls, post.media, strict=True)
            ],
        }
    activity = post.urn.rsplit(":", 1)[1]
    username = f"user{rng.randrange(10_000)}"
    return {
        "urn": {"activity_urn": activity, "share_urn": None, "ugcPost_urn": None},
        "full_urn": post.urn,
        "posted_at": {
            "date": "2025-11-20 10:00:00",
            "relative": "1w",
            "timestamp": 1763000000000 + rng.randrange(10**9),
        },
        "text": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(10, 80))),
        "url": f"https://www.linkedin.com/posts/{username}_activity-{activity}-x",
        "post_type": "regular",
        "author": {
            "first_name": "Bench",
            "last_name": username.title(),
            "headline": "Benchmark author",
            "username": username,
            "profile_url": f"https://www.linkedin.com/in/{username}",
            "profile_picture": None,
        },  # fmt: skip
        "stats": {
            "total_reactions": rng.randrange(5000),
            "like": rng.randrange(5000),
            "comments": rng.randrange(300),
            "reposts": rng.randrange(100),
        },  # fmt: skip
        "media": media,
    }


_WORDS = "team hiring launch cloud story chart growth data platform graviton rust python open source".split()


def write_posts(
    directory: Path, posts: list[Post], base_url: str, signer: Signer, seed: int, per_file: int = 500
) -> list[str]:
    """Write posts as scrape files (lists of posts); returns every media URL in post order."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    urls: list[str] = []
    for number, start in enumerate(range(0, len(posts), per_file)):
        batch = [post_json(p, base_url, signer, rng) for p in posts[start : start + per_file]]
        for data in batch:
            media = data["media"]
            if media["type"] == "video":
                urls += [media["url"]] + ([media["thumbnail"]] if "thumbnail" in media else [])
            else:
                urls += [image["url"] for image in media["images"]]
        (directory / f"scrape_{number:03d}.json").write_text(json.dumps(batch))
    return urls


def write_url_list(path: Path, urls: list[str]) -> None:
    path.write_text("".join(u + "\n" for u in urls))


def write_aria2_input(path: Path, urls: list[str]) -> None:
    """aria2c's input file: each URL with an explicit output name (CDN paths end alike)."""
    path.write_text("".join(f"{u}\n  out={i:05d}\n" for i, u in enumerate(urls)))
