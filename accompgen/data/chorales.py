"""J. S. Bach's chorales as a vocal/accompaniment corpus that needs no download: music21 ships the scores.

The soprano line is the "vocal"; alto, tenor and bass are the accompaniment, played on strings, organ, piano, ...
Each training chorale is rendered several times with its own transposition, tempo, patches and velocity, its
melody sung or played by one of many voices (General-MIDI voices and melody instruments, or an additive singer)
through a recording chain of its own (level, tilt, room, noise), so the models learn harmony rather than one
timbre. Held-out chorales keep the two General-MIDI choir patches and a clean chain, so their scores stay
comparable. Every chorale whose position in the sorted list of music21's Bach paths is a multiple of
HOLDOUT_EVERY is held out: rendered once, into `test/`, never trained on. Songs are written as the folders
`accompgen prepare` reads (vocals + accompaniment).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from accompgen.core.errors import UserError
from accompgen.data.singer import Singer, sing
from accompgen.data.stems import SongError
from accompgen.data.training_voice import sing_additive
from accompgen.data.vocal_chain import VocalChain

HOLDOUT_EVERY = 10
VOICES = ("Soprano", "Alto", "Tenor", "Bass")
VOCAL_PATCHES = (52, 53)  # Choir Aahs, Voice Oohs: the held-out songs' voices
ADDITIVE_SINGER = -1  # not a General-MIDI program: accompgen.data.training_voice
# Choir Aahs, Voice Oohs, Synth Voice, Lead 6 (voice), violin, viola, trumpet, alto sax, oboe, clarinet, flute
TRAINING_VOCALS = (52, 53, 54, 85, 40, 41, 56, 65, 68, 71, 73, ADDITIVE_SINGER)
ACCOMPANIMENT_PATCHES = (48, 49, 19, 20, 0, 6, 42)  # strings x2, church and reed organ, piano, harpsichord, cello
TRANSPOSE_RANGE = 6  # semitones either way
BPM_RANGE = (60, 100)
VELOCITY_RANGE = (75, 105)
RELEASE_S = 1.0  # rendered after the last note so the final chord rings out
NOTE_GAP_S = 0.02  # a repeated note is released this much early, so it is heard again


@dataclass(frozen=True)
class Rendition:
    """How one chorale is turned into audio."""

    transpose: int  # semitones
    bpm: float  # quarter notes per minute
    vocal_patch: int  # General-MIDI program of the soprano, or ADDITIVE_SINGER
    accompaniment_patch: int  # General-MIDI program of alto, tenor and bass
    velocity: int
    vocal_chain: VocalChain | None = None  # None: the vocal as rendered

    @property
    def seconds_per_quarter(self) -> float:
        return 60.0 / self.bpm


@dataclass(frozen=True)
class Chorale:
    name: str  # the score's file stem, e.g. bwv1.6
    index: int  # position in the sorted list of music21's Bach paths
    voices: dict[str, list[tuple[float, float, int]]]  # voice -> (onset, duration in quarters, MIDI pitch)

    @property
    def held_out(self) -> bool:
        return self.index % HOLDOUT_EVERY == 0


@dataclass
class CorpusReport:
    written: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # chorale -> why


def chorale_paths() -> list[Path]:
    """music21's Bach scores, sorted: the positions in this list decide the held-out set."""
    try:
        from music21 import corpus
    except ImportError as err:
        raise UserError("the chorale corpus needs music21: pip install 'accompgen[train]'") from err
    return sorted(Path(p) for p in corpus.getComposer("bach"))


def read_chorale(path: Path, index: int) -> Chorale:
    """The four voices of one score as note lists; a score without all four raises SongError."""
    from music21 import converter

    try:
        score = converter.parse(str(path))
    except Exception as err:  # music21 raises many types for a damaged score
        raise SongError(f"{path.name}: music21 cannot parse it ({err})") from err
    # some scores name a part over several lines ("Soprano\rOboe 1,2\rViolin1"): the voice is the first
    parts = {((part.partName or "").splitlines() or [""])[0].strip(): part for part in score.parts}
    missing = [voice for voice in VOICES if voice not in parts]
    if missing:
        raise SongError(f"{path.name}: no {', '.join(missing)} part (parts: {', '.join(parts) or 'none'})")
    voices = {}
    for voice in VOICES:
        notes = [
            (float(n.offset), float(n.quarterLength), pitch.midi)
            for n in parts[voice].stripTies().flatten().notes
            for pitch in n.pitches
        ]
        if not notes:
            raise SongError(f"{path.name}: the {voice} part has no notes")
        voices[voice] = notes
    return Chorale(path.name.removesuffix(path.suffix), index, voices)


def random_renditions(
    name: str, count: int, vocals: tuple[int, ...] = VOCAL_PATCHES, chained: bool = False
) -> list[Rendition]:
    """`count` renditions drawn from a generator seeded by the chorale's name: re-runs draw the same ones. The
    vocal is one of `vocals`; `chained` draws a recording chain for it too."""
    rng = np.random.default_rng(_seed(name))
    renditions = []
    for _ in range(count):
        rendition = Rendition(
            transpose=int(rng.integers(-TRANSPOSE_RANGE, TRANSPOSE_RANGE + 1)),
            bpm=float(round(rng.uniform(*BPM_RANGE))),
            vocal_patch=int(rng.choice(vocals)),
            accompaniment_patch=int(rng.choice(ACCOMPANIMENT_PATCHES)),
            velocity=int(rng.integers(*VELOCITY_RANGE)),
        )
        renditions.append(replace(rendition, vocal_chain=VocalChain.draw(rng)) if chained else rendition)
    return renditions


def _seed(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:12], 16)


class SoundfontRenderer:
    """Notes -> mono audio with tinysoundfont, one voice at a time so each can have its own patch."""

    def __init__(self, soundfont: Path, sample_rate: int):
        try:
            import tinysoundfont
        except ImportError as err:
            raise UserError(
                "rendering the chorales needs tinysoundfont: pip install --no-deps tinysoundfont "
                "(its PyAudio dependency is only for live playback)"
            ) from err
        if not soundfont.is_file():
            raise UserError(f"soundfont {soundfont} does not exist: give an .sf2 file with --soundfont")
        self.sample_rate = sample_rate
        self.synth = tinysoundfont.Synth(samplerate=sample_rate)
        self.font = self.synth.sfload(str(soundfont))

    def render(self, notes: list[tuple[float, float, int]], rendition: Rendition, patch: int) -> np.ndarray:
        self.synth.program_select(0, self.font, 0, patch)
        spq = rendition.seconds_per_quarter
        events = sorted(
            [(onset * spq, 1, pitch + rendition.transpose) for onset, _, pitch in notes]
            + [
                (max(onset * spq, (onset + length) * spq - NOTE_GAP_S), 0, pitch + rendition.transpose)
                for onset, length, pitch in notes
            ]
        )  # at equal times note-offs (0) sort first, so a repeated note is released before it sounds again
        chunks, now = [], 0
        for time_s, on, pitch in events:
            sample = round(time_s * self.sample_rate)
            if sample > now:
                chunks.append(self._generate(sample - now))
                now = sample
            if on:
                self.synth.noteon(0, pitch, rendition.velocity)
            else:
                self.synth.noteoff(0, pitch)
        chunks.append(self._generate(round(RELEASE_S * self.sample_rate)))
        self.synth.sounds_off()  # a release still ringing would leak into the next part or song
        self._generate(self.sample_rate // 10)  # sounds_off fades each voice out quickly, not at once
        return np.concatenate(chunks)

    def _generate(self, samples: int) -> np.ndarray:
        stereo = np.frombuffer(self.synth.generate(samples), dtype=np.float32)
        return stereo.reshape(-1, 2).mean(axis=1)


def render_chorale(
    chorale: Chorale, rendition: Rendition, renderer: SoundfontRenderer, unseen_voice: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(vocal, accompaniment), equally long. With `unseen_voice` the soprano is sung by the evaluation singer
    (accompgen.data.singer) at the loudness of the patch it replaces, so that only the timbre differs."""
    rate = renderer.sample_rate
    rng = np.random.default_rng(_seed(f"{chorale.name}:{rendition}"))  # the additive singer's and the chain's
    if rendition.vocal_patch == ADDITIVE_SINGER:
        vocal = sing_additive(melody(chorale, rendition), rendition.seconds_per_quarter, rate, rng)
    else:
        vocal = renderer.render(chorale.voices["Soprano"], rendition, rendition.vocal_patch)
    if unseen_voice:
        vocal = sung_like(vocal, chorale, rendition, rate)
    if rendition.vocal_chain:
        vocal = rendition.vocal_chain.apply(vocal, rate, rng)
    parts = [renderer.render(chorale.voices[v], rendition, rendition.accompaniment_patch) for v in VOICES[1:]]
    n = min(len(vocal), *(len(p) for p in parts))
    return vocal[:n], np.sum([p[:n] for p in parts], axis=0).astype(np.float32)


def melody(chorale: Chorale, rendition: Rendition) -> list[tuple[float, float, int]]:
    """The soprano's notes in the rendition's key, for the synthesized singers."""
    return [(onset, length, pitch + rendition.transpose) for onset, length, pitch in chorale.voices["Soprano"]]


def sung_like(patch: np.ndarray, chorale: Chorale, rendition: Rendition, sample_rate: int) -> np.ndarray:
    """The soprano sung by the evaluation singer of this chorale, as long as `patch` (the same notes played) and at
    its RMS."""
    voice = sing(
        melody(chorale, rendition),
        rendition.seconds_per_quarter,
        sample_rate,
        Singer.for_song(chorale.name),
        seed=chorale.index,
    )
    voice = np.pad(voice, (0, max(0, len(patch) - len(voice))))[: len(patch)]  # both ring out about 1 s
    rms = float(np.sqrt(np.mean(voice**2)))
    return np.asarray(voice * np.sqrt(np.mean(patch**2)) / max(rms, 1e-9), dtype=np.float32)


def default_soundfont() -> Path:
    """TimGM6mb.sf2, the General-MIDI soundfont pretty_midi ships (GPL-2 samples by Tim Brechbill)."""
    try:
        import pretty_midi
    except ImportError as err:
        raise UserError("no soundfont: pip install pretty_midi (it ships TimGM6mb.sf2), or give --soundfont") from err
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def write_song(folder: Path, vocal: np.ndarray, accompaniment: np.ndarray, sample_rate: int) -> None:
    """Both stems into a staging folder of this writer's own, renamed into place: a folder that exists is complete.
    When another render of the same song got there first, its folder stays (the render of a name is the same)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own rather than tempfile.mkdtemp, whose folders are private to the user (0700) whatever the umask
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir()
    try:
        sf.write(staging / "vocals.flac", vocal, sample_rate, subtype="PCM_16")
        sf.write(staging / "accompaniment.flac", accompaniment, sample_rate, subtype="PCM_16")
        os.replace(staging, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class CorpusSettings:
    renditions: int = 2  # per training chorale; held-out chorales get one
    sample_rate: int = 24000
    limit: int | None = None  # render only the first chorales of each split (quick runs)
    unseen_voice: bool = False  # only the held-out chorales, sung by a voice family no training uses
    training_vocals: tuple[int, ...] = TRAINING_VOCALS  # the voices training renditions draw from
    soundfont: Path | None = None  # default: TimGM6mb.sf2 from pretty_midi


def write_corpus(
    out: Path, settings: CorpusSettings, progress: Callable[[str, int, int], None] | None = None
) -> CorpusReport:
    """Render every chorale into out/train/NAME-rI/ and out/test/NAME/; folders already there are kept. With
    settings.unseen_voice only out/test/, its vocals sung by the evaluation singer."""
    paths = chorale_paths()
    renderer = SoundfontRenderer(settings.soundfont or default_soundfont(), settings.sample_rate)
    indexed = list(enumerate(paths))
    if settings.unseen_voice:
        indexed = [(index, path) for index, path in indexed if index % HOLDOUT_EVERY == 0]
    chosen = _limited(indexed, settings.limit)
    report = CorpusReport()
    for done, (index, path) in enumerate(chosen):
        name = path.name.removesuffix(path.suffix)
        if progress:
            progress(name, done, len(chosen))
        held_out = index % HOLDOUT_EVERY == 0
        split = "test" if held_out else "train"
        if held_out:
            renditions = random_renditions(name, 1)
        else:
            renditions = random_renditions(name, settings.renditions, settings.training_vocals, chained=True)
        folders = [out / split / (name if held_out else f"{name}-r{i}") for i in range(len(renditions))]
        if all(f.is_dir() for f in folders):
            report.reused.append(name)
            continue
        try:
            chorale = read_chorale(path, index)
        except SongError as err:
            report.skipped[name] = str(err)
            continue
        for folder, rendition in zip(folders, renditions, strict=True):
            if not folder.is_dir():
                audio = render_chorale(chorale, rendition, renderer, settings.unseen_voice)
                write_song(folder, *audio, settings.sample_rate)
        report.written.append(name)
    return report


def _limited(indexed: list[tuple[int, Path]], limit: int | None) -> list[tuple[int, Path]]:
    """The first `limit` chorales of each split, or all."""
    if limit is None:
        return indexed
    test = [item for item in indexed if item[0] % HOLDOUT_EVERY == 0][:limit]
    train = [item for item in indexed if item[0] % HOLDOUT_EVERY != 0][:limit]
    return sorted(test + train)
