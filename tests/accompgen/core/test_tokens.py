import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from accompgen.core.tokens import (
    NULL,
    NUM_SPECIAL,
    PAD,
    PATTERNS,
    SEP,
    UNKNOWN,
    TokenLayout,
    build_window,
    deinterleave,
    frames_for,
    from_steps,
    interleave,
    step_bounds,
    to_steps,
)

LAYOUT = TokenLayout(semantic_clusters=16, codebook_size=32)


def codes_for(track, batch, frames, seed=0):
    sizes = np.array([s.size for s in track.streams])[None, :, None]
    return (np.random.default_rng(seed).random((batch, track.width, frames)) * sizes).astype(np.int64)


@given(arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(0, 20))))
def test_interleave_round_trips(codes):
    flat = interleave(codes)
    assert flat.shape == (codes.shape[0], codes.shape[1] * codes.shape[2])
    np.testing.assert_array_equal(deinterleave(flat, codes.shape[1]), codes)


def test_interleave_is_frame_major():
    codes = np.array([[10, 11, 12], [20, 21, 22]])  # 2 codebooks x 3 frames
    np.testing.assert_array_equal(interleave(codes), [10, 20, 11, 21, 12, 22])


def test_deinterleave_rejects_partial_frames():
    with pytest.raises(ValueError, match="whole frames"):
        deinterleave(np.arange(7), 4)


@given(st.sampled_from(["vocal_semantic", "inst_semantic", "coarse", "fine"]), st.integers(0, 30), st.integers(0, 99))
def test_track_ids_round_trip_and_stay_in_their_streams(name, frames, seed):
    track = LAYOUT.tracks[name]
    codes = codes_for(track, 2, frames, seed)
    ids = track.to_ids(codes)
    lo, hi = step_bounds(track, frames, PATTERNS["flat"])
    assert ((ids >= lo[:, 0]) & (ids < hi[:, 0])).all()
    np.testing.assert_array_equal(from_steps(track, ids[..., None], frames, PATTERNS["flat"]), codes)


def test_track_rejects_codes_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        LAYOUT.tracks["coarse"].to_ids(np.full((4, 2), 32))
    coarse_ids = LAYOUT.tracks["coarse"].to_ids(np.zeros((4, 2), np.int64))
    with pytest.raises(ValueError, match="outside"):
        from_steps(LAYOUT.tracks["fine"], coarse_ids[..., None], 2, PATTERNS["flat"])


def test_streams_tile_the_vocabulary_after_the_special_ids():
    streams = [LAYOUT.vocal_semantic, LAYOUT.inst_semantic, *LAYOUT.codebooks]
    assert streams[0].offset == NUM_SPECIAL
    for before, after in itertools.pairwise(streams):
        assert before.stop == after.offset
    assert streams[-1].stop == LAYOUT.vocab_size == 3 + 2 * 16 + 8 * 32


@given(st.integers(0, 50))
def test_ticks_put_both_rates_on_one_clock(n):
    """n/25 seconds: 2n semantic frames, 3n acoustic frames, one time line."""
    semantic = LAYOUT.tracks["inst_semantic"].ticks(2 * n)
    coarse = LAYOUT.tracks["coarse"].ticks(3 * n)
    np.testing.assert_array_equal(semantic, 3 * np.arange(2 * n))
    np.testing.assert_array_equal(coarse, np.repeat(2 * np.arange(3 * n), 4))
    # 50 Hz frame 2k and 75 Hz frame 3k sound at the same moment, tick 6k
    np.testing.assert_array_equal(semantic[::2], coarse[::12])


def test_layout_round_trips_through_its_manifest_form():
    data = LAYOUT.to_dict()
    assert TokenLayout.from_dict(data) == LAYOUT
    assert data["streams"]["codebook_1"] == {"offset": LAYOUT.codebooks[0].offset, "size": 32}
    with pytest.raises(ValueError, match="vocab_size"):
        TokenLayout.from_dict({**data, "vocab_size": 7})


def test_stages_name_their_condition_and_target():
    stages = LAYOUT.stages
    assert [t.name for t in stages["semantic"].condition] == ["vocal_semantic"]
    assert stages["semantic"].target.name == "inst_semantic"
    assert [t.name for t in stages["coarse"].condition] == ["vocal_semantic", "inst_semantic"]
    assert stages["coarse"].target.streams == LAYOUT.codebooks[:4]
    assert stages["fine"].target.streams == LAYOUT.codebooks[4:]


@pytest.mark.parametrize(("seconds", "rate", "frames"), [(5.0, 50, 250), (0.1, 75, 8), (0.0, 75, 0), (1 / 3, 75, 25)])
def test_frames_for_counts_partial_frames(seconds, rate, frames):
    assert frames_for(seconds, rate) == frames


def test_window_layout():
    stage = LAYOUT.stages["coarse"]
    vocal = codes_for(LAYOUT.tracks["vocal_semantic"], 2, 10)
    inst = codes_for(LAYOUT.tracks["inst_semantic"], 2, 10)
    prompt = codes_for(stage.target, 2, 3)
    window = build_window(stage, {"vocal_semantic": vocal, "inst_semantic": inst}, 15, prompt)
    assert window.condition.shape == (2, 20)
    assert window.target.shape == (2, 60, 1) and window.known_steps == 12
    assert (window.target[:, 12:] == UNKNOWN).all()
    assert len(window.ticks) == 20 + 1 + 60
    prefix = window.prefix()
    assert prefix.shape == (2, 20 + 1 + 12, 1)
    assert (prefix[:, 20, 0] == SEP).all()
    unconditional = window.prefix(unconditional=True)
    assert (unconditional[:, :20] == NULL).all()
    np.testing.assert_array_equal(unconditional[:, 20:], prefix[:, 20:])
    assert window.ticks[20] == 0 and window.ticks[-1] == 2 * 14


def test_delay_window_layout():
    """The delay pattern: all four codebooks per step, codebook k k steps late; single-token positions carry
    their id in slot 0 and PAD in the others."""
    stage = LAYOUT.stages["coarse"]
    semantic = {name: codes_for(LAYOUT.tracks[name], 1, 10) for name in ("vocal_semantic", "inst_semantic")}
    prompt = codes_for(stage.target, 1, 2)
    window = build_window(stage, semantic, 15, prompt, PATTERNS["delay"])
    assert window.target.shape == (1, 15 + 3, 4)
    assert window.known_steps == 2  # steps 0 and 1 hold only frames 0 and 1 (and empty slots)
    step2 = window.target[0, 2]  # slot k holds frame 2 - k: frames 2 (unknown), 1, 0 (known), -1 (empty)
    assert step2[0] == UNKNOWN and step2[3] == PAD
    assert step2[1] == prompt[0, 1, 1] + LAYOUT.codebooks[1].offset
    assert window.lo[0, 1] == -1 and window.lo[2, 1] == LAYOUT.codebooks[1].offset
    prefix = window.prefix()
    assert prefix.shape == (1, 21 + 2, 4) and (prefix[0, :21, 1:] == PAD).all()
    np.testing.assert_array_equal(window.ticks[21:], 2 * np.arange(18))


@given(st.sampled_from(sorted(PATTERNS)), st.integers(1, 20), st.integers(0, 99))
def test_patterns_round_trip(pattern_name, frames, seed):
    track = LAYOUT.tracks["fine"]
    pattern = PATTERNS[pattern_name]
    codes = codes_for(track, 2, frames, seed)
    steps = to_steps(track, codes, pattern)
    frame, _, _ = pattern.grid(frames, track.width)
    assert steps.shape == (2, *frame.shape)
    assert (frame >= 0).sum() == frames * track.width  # every code exactly once
    assert (steps[:, frame < 0] == PAD).all()
    lo, hi = step_bounds(track, frames, pattern)
    valid = frame >= 0
    assert ((steps[:, valid] >= lo[valid]) & (steps[:, valid] < hi[valid])).all()
    np.testing.assert_array_equal(from_steps(track, steps, frames, pattern), codes)


def test_flat_steps_are_the_interleaved_ids():
    track = LAYOUT.tracks["coarse"]
    codes = codes_for(track, 1, 6)
    np.testing.assert_array_equal(to_steps(track, codes, PATTERNS["flat"])[..., 0], track.to_ids(codes))


def test_window_rejects_a_prompt_longer_than_the_window():
    stage = LAYOUT.stages["semantic"]
    vocal = codes_for(LAYOUT.tracks["vocal_semantic"], 1, 4)
    with pytest.raises(ValueError, match="does not fit"):
        build_window(stage, {"vocal_semantic": vocal}, 4, codes_for(stage.target, 1, 5))
