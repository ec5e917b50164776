"""Atari through ale-py (extra "atari"): ``ALE/<Game>-v5`` ids train from rendered frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldflux.cli import main

pytest.importorskip("ale_py", reason="the atari extra is part of the dev install")


def test_dreamerv3_trains_on_an_atari_game_from_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pong"
    code = main(
        [
            "train",
            "dreamerv3:ci",
            "--env",
            "ALE/Pong-v5",
            "--obs",
            "image",
            "--image-size",
            "32",
            "--steps",
            "16",
            "--seed-steps",
            "12",
            "--max-episode-steps",
            "10",
            "--threads",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "trained dreamerv3:ci on ALE/Pong-v5: 16 env steps" in capsys.readouterr().out
    assert (out / "checkpoint").is_dir()


def test_atari_frames_as_vectors_are_refused_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["train", "tdmpc2:ci", "--env", "ALE/Pong-v5", "--steps", "5", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "is not a 1-D Box" in err and "--obs image" in err and "Traceback" not in err
