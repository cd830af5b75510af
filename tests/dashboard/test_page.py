"""The page as the gateway serves it."""

from __future__ import annotations

from nanoserve.dashboard.router import STYLESHEET, page_html


def test_the_page_inlines_its_stylesheet() -> None:
    html = page_html()
    assert STYLESHEET not in html and "<style>" in html and "--accent" in html
