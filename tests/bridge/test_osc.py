import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accompgen_bridge.osc import MAX_FRAME, MalformedPacket, SlipDecoder, decode, encode, slip_frame

ARGS = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
        st.integers(-(2**31), 2**31 - 1),
    ),
    max_size=6,
)


@given(st.lists(ARGS, min_size=1, max_size=5), st.integers(1, 50))
def test_slip_frames_survive_any_chunking(messages, chunk):
    stream = b"".join(slip_frame(encode("/m", args)) for args in messages)
    decoder = SlipDecoder()
    frames = []
    for i in range(0, len(stream), chunk):
        frames += decoder.feed(stream[i : i + chunk])
    assert [decode(frame)[0][1] for frame in frames] == messages


@given(st.binary(max_size=200))
def test_decode_raises_only_malformed_packet(data):
    with contextlib.suppress(MalformedPacket):
        decode(data)


def test_an_oversized_frame_is_refused():
    with pytest.raises(MalformedPacket, match="longer than"):
        SlipDecoder().feed(b"x" * (MAX_FRAME + 1))
