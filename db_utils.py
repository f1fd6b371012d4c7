"""Ids for every social-tui table, under the module name the installation's scripts import."""

from social_tui_media.ids import *  # noqa: F403
from social_tui_media.ids import __all__  # noqa: F401
