"""Progress bars: a loop inside another tracked loop runs plainly instead of crashing Rich."""

from __future__ import annotations

import io

from rich.console import Console

from mammo_common import cli_support


def test_nested_track_shows_one_bar(monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli_support, "progress_enabled", lambda: True)
    monkeypatch.setattr(cli_support, "err_console", Console(file=out, force_terminal=True,
                                                            width=100))
    seen = []
    for outer in cli_support.track(range(3), "outer"):
        # a second live bar would raise rich.errors.LiveError
        seen.append(list(cli_support.track(range(outer + 1), "inner")))
    assert seen == [[0], [0, 1], [0, 1, 2]]
    text = out.getvalue()
    assert "outer" in text and "inner" not in text
    # after the outer loop a new loop gets its bar again
    assert list(cli_support.track(range(2), "again")) == [0, 1]
    assert "again" in out.getvalue()


def test_synth_shows_a_bar_with_its_count(monkeypatch, tmp_path) -> None:
    """``mammo synth`` renders phantoms one by one under a bar (1 of N, ...)."""
    from mammo_common.synth import synth

    out = io.StringIO()
    monkeypatch.setattr(cli_support, "progress_enabled", lambda: True)
    monkeypatch.setattr(cli_support, "err_console", Console(file=out, force_terminal=True,
                                                            width=100))
    result = synth(tmp_path / "raw", cases=1, size=(64, 48))
    text = out.getvalue()
    assert "mammo synth" in text
    assert f"{result.n_images}/{result.n_images}" in text
