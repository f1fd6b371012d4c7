"""What a search asks for, parsed once for every back end: words, "phrases", -negation and
prefix* terms, the filters, and the result's one shape.

Each back end compiles the terms natively: SQLite to an FTS5 expression (here, `fts5_match`),
PostgreSQL and REST to a tsquery inside the `media_search` SQL function (they send the terms as
JSON). Pure: no database here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date

SEARCH_FIELDS = ("text", "description", "tags", "post")
# FTS5 columns of each --field (sqlite.sql: media_search has all, post_search the "post" ones).
FTS5_COLUMNS = {
    "text": ("image_text",),
    "description": ("description",),
    "tags": ("tags",),
    "post": ("post_text", "author"),
}
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class SearchSyntaxError(ValueError):
    """The query has nothing to look for (only negations, or no words)."""


@dataclass(frozen=True)
class SearchTerm:
    text: str
    phrase: bool = False
    prefix: bool = False
    negated: bool = False


@dataclass(frozen=True)
class SearchQuery:
    """One search: the terms (all must match, negated ones must not) and the filters."""

    terms: tuple[SearchTerm, ...]
    media_type: str | None = None
    author: str | None = None
    since: str | None = None  # YYYY-MM-DD: posts posted on or after that UTC day
    field: str | None = None  # one of SEARCH_FIELDS; None: all
    limit: int = 20

    def __post_init__(self) -> None:
        if self.field is not None and self.field not in SEARCH_FIELDS:
            raise ValueError(f"field={self.field!r}: expected one of {', '.join(SEARCH_FIELDS)}")
        if self.since is not None:
            date.fromisoformat(self.since)
        if not any(not t.negated for t in self.terms):
            raise SearchSyntaxError("the query needs at least one word to look for (not only -negations)")

    def terms_json(self) -> list[dict]:
        return [asdict(t) for t in self.terms]


@dataclass(frozen=True)
class SearchHit:
    """One hit: a picture (all its identical or near-duplicate copies), why it matched, its posts."""

    media_id: str  # the best-ranked matching copy
    media_type: str
    rank: float
    snippet: str
    local_file_path: str | None
    media_url: str | None
    media_ids: list[str]  # every copy, in the order of their posts (earliest first)
    posts: list[dict] = field(
        default_factory=list
    )  # {post_id, post_url, author, posted_at_timestamp, media_id}
    fuzzy: bool = False  # found by similar spelling, not by the words themselves


def parse_search(text: str) -> tuple[SearchTerm, ...]:
    """`dynamodb "re:invent keynote" -aws launch*` as terms, in the order written."""
    terms = []
    for match in _TOKEN.finditer(text):
        if match.group(2) is not None:
            words = " ".join(_WORD.findall(match.group(2)))
            if words:
                terms.append(SearchTerm(words, phrase=True, negated=bool(match.group(1))))
            continue
        token = match.group(3)
        negated = token.startswith("-") and len(token) > 1
        token = token[1:] if negated else token
        prefix = token.endswith("*")
        words = _WORD.findall(token)
        if not words:
            continue
        if len(words) > 1:  # re:invent, cost-anomaly: its words next to each other
            terms.append(SearchTerm(" ".join(words), phrase=True, negated=negated))
        else:
            terms.append(SearchTerm(words[0], prefix=prefix, negated=negated))
    return tuple(terms)


def fts5_match(terms: tuple[SearchTerm, ...], field: str | None = None) -> str:
    """The FTS5 MATCH expression of these terms: positives ANDed, negatives NOTed, every word
    quoted (never FTS5 syntax), limited to the columns of `field`."""

    def quoted(term: SearchTerm) -> str:
        words = [f'"{w}"' for w in term.text.split()]
        body = " + ".join(words) if term.phrase else words[0]
        return body + ("*" if term.prefix else "")

    positives = " AND ".join(quoted(t) for t in terms if not t.negated)
    negatives = [quoted(t) for t in terms if t.negated]
    expression = f"({positives})"
    if negatives:
        expression += f" NOT ({' OR '.join(negatives)})"
    if field is not None:
        expression = f"{{{' '.join(FTS5_COLUMNS[field])}}} : ({expression})"
    return expression
