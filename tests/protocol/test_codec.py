"""Wire encodings checked against the websockets library's own serializer."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from pushwire.protocol.codec import ws_text_frame


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frames_match_the_library_at_every_length_boundary(length: int) -> None:
    payload = b"x" * length

    assert ws_text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(
        mask=False, extensions=[]
    )
