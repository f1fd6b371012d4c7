"""`manage_media.py browse`: media in the terminal (Textual). A list of media with their post's
author, date, type, size and status, filtered live; a preview of the thumbnail drawn by
textual-image (Kitty or Sixel graphics where the terminal has them, Unicode half-blocks
everywhere else, tmux and SSH included); the analysis, texts and post beside it.

Rows come a page at a time (`find_media`): the first screen shows at once on any number of rows,
the next page loads when the cursor nears the end. The list is drawn first; textual-image's
widget (with numpy) loads after it, on a thread. What the terminal can draw was asked before
Textual started (`terminal_graphics`). Everything from posts is shown as text, never markup.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich import filesize
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Input, Static

# Only textual-image's terminal module here (no numpy, no questions to the terminal): its widgets
# load after the first screen, see `image_widget`.
from textual_image import _terminal as textual_image_terminal

from social_tui_media.cli.terminal_graphics import TerminalGraphics
from social_tui_media.jobs.gallery_pages import first_line, posted_day, web_url
from social_tui_media.media.cache import MediaCache
from social_tui_media.settings import Settings
from social_tui_media.store.browse import find_media
from social_tui_media.store.interface import BrowseQuery, MediaStore, requeue_for_analysis
from social_tui_media.store.usage import UsageRecorder

IMAGE_WIDGETS = {  # the preview's widget in textual_image.widget, by protocol
    "kitty": "TGPImage",
    "sixel": "SixelImage",
    "halfblock": "HalfcellImage",
    "unicode": "UnicodeImage",
}
COLUMNS = ("author", "date", "type", "size", "status", "description")
SEARCH_PAUSE = 0.25  # seconds of no typing before the list is filtered again
MORE_BEFORE_END = 20  # load the next page when the cursor is this close to the last row


def status_of(row: dict) -> str:
    if row.get("evicted_at"):
        return "archived"
    download = row.get("download_status") or "pending"
    if download != "downloaded":
        return download
    analysis = row.get("ai_analysis_status") or "not_started"
    return {"completed": "analysed", "not_started": "cached", "started": "analysing"}.get(analysis, analysis)


def author_of(row: dict) -> str:
    name, user = (row.get("post_author_name") or "").strip(), (row.get("post_author_username") or "").strip()
    return f"{name} @{user}" if name and user else name or (f"@{user}" if user else "")


def description_of(row: dict) -> str:
    analysis = row.get("ai_analysis") or {}
    return first_line(str(analysis.get("description") or "")) or first_line(row.get("post_text") or "")


def cells(row: dict) -> list[Text]:
    """A row's cells as plain Text: nothing from a post is read as markup."""
    size = filesize.decimal(row["file_size"]) if row.get("file_size") else ""
    values = (
        author_of(row), posted_day(row.get("post_posted_at")), row.get("media_type") or "", size,
        status_of(row), description_of(row),
    )  # fmt: skip
    return [Text(str(v), no_wrap=True, overflow="ellipsis") for v in values]


def details_of(row: dict) -> Text:
    """The preview pane's text: analysis, texts, post and where the file is."""
    analysis = row.get("ai_analysis") or {}
    out = Text()

    def section(label: str, value: Any) -> None:
        if value:
            out.append(f"{label}\n", style="bold")
            out.append(f"{value}\n\n")

    out.append(f"{author_of(row) or 'unknown author'}", style="bold")
    out.append(f"  {posted_day(row.get('post_posted_at'))}  {row.get('media_type')}  {status_of(row)}\n\n")
    section("Description", analysis.get("description"))
    tags = analysis.get("tags")
    section("Tags", ", ".join(str(t) for t in tags) if isinstance(tags, list) else None)
    section("Text in the image", analysis.get("text_in_image"))
    section("Extracted text", row.get("extracted_text"))  # the local text extraction's, once rows have it
    section("Post", row.get("post_text"))
    section("Post URL", web_url(row.get("post_url")))
    if row.get("download_error"):
        section("Download error", row["download_error"])
    out.append(f"{row['media_id']}  {row.get('mime_type') or ''}", style="dim")
    return out


def image_widget(protocol: str) -> type[Widget]:
    """The preview's widget class for a protocol. Importing textual-image's widgets takes about
    0.1 s (numpy): the browser does it after the list is on the screen."""
    import textual_image.widget

    return getattr(textual_image.widget, IMAGE_WIDGETS[protocol])


def _terminal_is_textuals(*args: object, **kwargs: object) -> None:
    raise textual_image_terminal.TerminalError("asked before Textual started (terminal_graphics)")


def hand_over_graphics(graphics: TerminalGraphics) -> None:
    """Give textual-image the cell size the probe found and stop it asking the terminal itself:
    its widgets ask on import (0.1 s per unanswered question), and once Textual reads the
    keyboard the answers would go to Textual, or the keys to textual-image."""
    if graphics.cell_size is not None:
        cell_size = textual_image_terminal.CellSize(*graphics.cell_size)
        textual_image_terminal.get_cell_size._result = cell_size  # its own cache
    textual_image_terminal.capture_terminal_response = _terminal_is_textuals


class MediaBrowser(App):
    """The browser. `store` stays open for the app's life; the caller closes it."""

    TITLE = "social-tui media"
    CSS = """
    #list { width: 3fr; }
    #side { width: 2fr; border-left: solid $accent; }
    #search { dock: top; }
    #preview-box { height: 16; }
    #preview { height: 16; width: auto; }
    #details { padding: 0 1; }
    """
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("escape", "focus_list", "List", show=False),
        Binding("o", "open_file", "Open"),
        Binding("c", "copy_url", "Copy post URL"),
        Binding("a", "requeue", "Re-analyse"),
        Binding("right_square_bracket", "next_in_post", "Next in post"),
        Binding("left_square_bracket", "previous_in_post", "Prev in post"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        store: MediaStore,
        cache: MediaCache,
        query: BrowseQuery,
        images: str = "halfblock",
        page_rows: int | None = None,
    ):
        super().__init__()
        if images not in IMAGE_WIDGETS:
            raise ValueError(f"images={images!r}: one of {', '.join(IMAGE_WIDGETS)}")
        self.store, self.cache, self.browse_query = store, cache, query
        self.used = UsageRecorder(store)  # what a person looks at stays cached longest (batched)
        self.images = images
        self.preview: Any = None  # textual-image's widget, once the list is drawn
        self.preview_asked = False
        self.page_rows = page_rows
        self.rows: list[dict] = []
        self.cursor: object | None = None
        self.loading = False
        self.no_thumbnail: set[str] = set()  # md5s that gave none: not tried again this session
        self._search_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="list"):
                yield Input(
                    value=self.browse_query.text or "",
                    placeholder="/ search analysis, post text, author",
                    id="search",
                )
                yield DataTable(id="media", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="side"):
                yield Vertical(id="preview-box")  # the image comes in after the first screen
                yield Static(id="details")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        table.focus()
        self.reload()

    # rows ---------------------------------------------------------------------------------------

    def _page_args(self) -> dict:
        return {"limit": self.page_rows} if self.page_rows else {}

    def reload(self) -> None:
        """Start over with the current query (a new search)."""
        self.rows, self.cursor, self.loading = [], None, False  # a page still loading is for the old query
        self.query_one(DataTable).clear()
        self.load_page(self.browse_query, None, fresh=True)

    @work(thread=True, exclusive=True, group="rows")
    def load_page(self, query: BrowseQuery, cursor: object | None, fresh: bool = False) -> None:
        page = find_media(self.store, query, cursor, **self._page_args())
        self.call_from_thread(self._add_page, query, page.rows, page.cursor, fresh)

    def _add_page(self, query: BrowseQuery, rows: list[dict], cursor: object | None, fresh: bool) -> None:
        if query != self.browse_query:  # a newer search was typed meanwhile
            return
        table = self.query_one(DataTable)
        self.rows += rows
        self.cursor = cursor
        self.loading = False
        for row in rows:
            table.add_row(*cells(row), key=row["media_id"])
        more = "+" if cursor is not None else ""
        self.sub_title = f"{len(self.rows)}{more} media" + (
            f" · {self.browse_query.text}" if self.browse_query.text else ""
        )
        if fresh:
            if self.rows:
                table.move_cursor(row=0)
                self.show(self.rows[0])
            else:
                self.query_one("#details", Static).update(Text("No media match."))
                self._show_image(None)
        if not self.preview_asked:
            self.preview_asked = True
            self.add_preview()

    def _more_if_near_end(self, index: int) -> None:
        if self.cursor is not None and not self.loading and index >= len(self.rows) - MORE_BEFORE_END:
            self.loading = True
            self.load_page(self.browse_query, self.cursor)

    def current(self) -> dict | None:
        index = self.query_one(DataTable).cursor_row
        return self.rows[index] if 0 <= index < len(self.rows) else None

    # preview ------------------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.rows):
            self.show(self.rows[event.cursor_row])
            self._more_if_near_end(event.cursor_row)

    @work(exclusive=True, group="preview-widget")
    async def add_preview(self) -> None:
        """The preview's image widget, after the list is on the screen; textual-image and numpy
        load meanwhile on a thread."""
        painted = asyncio.Event()
        self.call_after_refresh(painted.set)
        await painted.wait()
        widget_class = await asyncio.to_thread(image_widget, self.images)
        preview = widget_class(id="preview")
        await self.query_one("#preview-box").mount(preview)
        self.preview = preview
        row = self.current()
        if row is not None:
            self.load_thumbnail(row)

    def show(self, row: dict) -> None:
        self.used.touch(row["media_id"])
        self.query_one("#details", Static).update(details_of(row))
        self._show_image(None)
        if self.preview is not None:  # else the preview loads the thumbnail when it comes
            self.load_thumbnail(row)

    @work(thread=True, exclusive=True, group="preview")
    def load_thumbnail(self, row: dict) -> None:
        """The thumbnail, made now when missing (a video's frames take a moment: off the UI thread)."""
        if row.get("md5_sum") in self.no_thumbnail:
            return
        path = self.cache.thumbnail_of(row)
        if path is None and row.get("md5_sum"):
            self.no_thumbnail.add(row["md5_sum"])
        self.call_from_thread(self._set_preview, row["media_id"], path)

    def _set_preview(self, media_id: str, path: Path | None) -> None:
        shown = self.current()
        if shown is not None and shown["media_id"] == media_id:
            self._show_image(path)

    def _show_image(self, path: Path | None) -> None:
        if self.preview is not None:
            self.preview.image = str(path) if path else None

    # search -------------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        text = event.value.strip() or None
        self._search_timer = self.set_timer(SEARCH_PAUSE, lambda: self._search(text))

    def _search(self, text: str | None) -> None:
        if text != self.browse_query.text:
            self.browse_query = BrowseQuery(
                text, self.browse_query.post_id, self.browse_query.author, self.browse_query.media_type
            )
            self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_focus_list()

    def action_focus_search(self) -> None:
        self.query_one(Input).focus()

    def action_focus_list(self) -> None:
        self.query_one(DataTable).focus()

    # actions ------------------------------------------------------------------------------------

    def action_open_file(self) -> None:
        row = self.current()
        path = self.cache.file_of(row) if row else None
        if path is None:
            self.notify(
                "This media is not in the cache: `manage_media.py download-all` fetches it.",
                severity="warning",
            )
            return
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        if shutil.which(opener) is None:
            self.notify(
                f"No {opener} here to open files with; the file is {path}", severity="warning", timeout=8
            )
            return
        subprocess.Popen(
            [opener, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.notify(f"Opening {path.name}")

    def action_copy_url(self) -> None:
        row = self.current()
        url = web_url(row.get("post_url")) if row else None
        if url is None:
            self.notify("This post has no URL.", severity="warning")
            return
        self.copy_to_clipboard(url)  # OSC 52: reaches the local clipboard over SSH and through tmux
        self.notify(f"Copied {url}")

    def action_requeue(self) -> None:
        row = self.current()
        if row is None:
            return
        if row.get("ai_analysis_status") == "started":
            self.notify("It is being analysed right now.", severity="warning")
            return
        requeue_for_analysis(self.store, [row["media_id"]])
        row["ai_analysis_status"] = "not_started"
        table = self.query_one(DataTable)
        table.update_cell(row["media_id"], "status", Text(status_of(row)))
        self.notify("Queued: `manage_media.py analyze --status not_started` analyses it again.")

    def _jump_in_post(self, step: int) -> None:
        row = self.current()
        if row is None:
            return
        same = [i for i, r in enumerate(self.rows) if r["post_id"] == row["post_id"]]
        if len(same) < 2:
            self.notify("This post has no other media.")
            return
        here = same.index(self.query_one(DataTable).cursor_row)
        self.query_one(DataTable).move_cursor(row=same[(here + step) % len(same)])

    def action_next_in_post(self) -> None:
        self._jump_in_post(1)

    def action_previous_in_post(self) -> None:
        self._jump_in_post(-1)


def run_browser(store: MediaStore, settings: Settings, query: BrowseQuery, graphics: TerminalGraphics) -> int:
    """Run the browser on this terminal until the user quits; the exit code. `graphics` is what
    `terminal_graphics.probe_terminal` found, asked before this."""
    hand_over_graphics(graphics)
    browser = MediaBrowser(store, MediaCache(settings.cache_dir), query, images=graphics.protocol)
    try:
        browser.run()
    finally:
        browser.used.close()
    return 0
