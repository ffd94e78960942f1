"""`accompgen preflight`: the checks of accompgen.data.preflight, printed for a person deciding whether to train."""

from __future__ import annotations

from rich.console import Console

from accompgen.data.preflight import PreflightReport


def print_preflight(report: PreflightReport, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    for split, words in (("train", "to train on"), ("test", "held out")):
        usable = report.usable(split)
        clips = sum(song.clips for song in usable)
        console.print(f"{len(usable)} song(s) {words}: {report.minutes(split):.1f} minutes, {clips} clips")
    left_out = [song for song in report.songs if not song.usable]
    if left_out:
        console.print(f"\n[bold]{len(left_out)} song(s) left out[/bold]")
        for song in left_out:
            console.print(f"  {song.name}: {song.unusable}", markup=False)
    with_problems = [song for song in report.songs if song.problems]
    if with_problems:
        console.print(f"\n[bold]{len(with_problems)} song(s) kept, with problems[/bold]")
        for song in with_problems:
            for problem in song.problems:
                console.print(f"  {song.name}: {problem}", markup=False)
    if report.duplicates:
        console.print(
            "\n[bold]the same song on both sides of the split[/bold] (remove one of each pair, or the "
            "held-out scores measure memory)"
        )
        for trained, held, loudness, harmony in report.duplicates:
            console.print(
                f"  {trained} (train) and {held} (held out): loudness r = {loudness:.3f}, chroma r = {harmony:.3f}",
                markup=False,
            )
    for note in report.notes:
        console.print(f"\nnote: {note}", markup=False)
    if not report.refusal:
        console.print("\nready to train")
