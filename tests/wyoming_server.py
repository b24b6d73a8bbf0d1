"""A Wyoming speech-to-text server on a Unix socket, for the hand-off tests.

`real` is built on the wyoming package's server classes with pocketsphinx's offline English
recogniser (its wheel ships the model); `slow` takes the audio and never answers; `garbled`
answers `describe` properly and then sends a line that is not a Wyoming event.

    python tests/wyoming_server.py unix:///PATH/stt.sock real [RECEIVED_DIR]

With RECEIVED_DIR, the SHA-256 of each utterance's audio as received is written there, so a
test can compare it with what was saved.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import uuid
from functools import partial
from pathlib import Path

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler, AsyncServer

PROGRAM = "pocketsphinx-test"
_DECODING = threading.Lock()  # one decoder, one utterance at a time


def info() -> Info:
    attribution = Attribution(name="CMU", url="https://cmusphinx.github.io")
    model = AsrModel(
        name="en-us",
        description="pocketsphinx en-us",
        attribution=attribution,
        installed=True,
        languages=["en"],
        version="5",
    )
    program = AsrProgram(
        name=PROGRAM,
        description="pocketsphinx",
        attribution=attribution,
        installed=True,
        models=[model],
        version="5",
    )
    return Info(asr=[program])


class Handler(AsyncEventHandler):
    def __init__(self, mode: str, decoder, received: Path | None, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.received = received
        self.decoder = decoder
        self.audio = bytearray()

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(info().event())
            return True
        if Transcribe.is_type(event.type) or AudioStart.is_type(event.type):
            return True
        if AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (16000, 2, 1)
            self.audio += chunk.audio
            return True
        if AudioStop.is_type(event.type):
            if self.received is not None:
                digest = hashlib.sha256(bytes(self.audio)).hexdigest()
                (self.received / f"{uuid.uuid4().hex}.sha256").write_text(digest)
            if self.mode == "slow":
                await asyncio.Event().wait()  # never answers
            if self.mode == "garbled":
                self.writer.write(b"\x00{{not a wyoming event\n")
                await self.writer.drain()
                return False
            text = await asyncio.get_running_loop().run_in_executor(None, self.recognise)
            await self.write_event(Transcript(text=text).event())
            return False
        return True

    def recognise(self) -> str:
        d = self.decoder
        with _DECODING:
            return self._decode(d)

    def _decode(self, d) -> str:
        d.start_utt()
        d.process_raw(bytes(self.audio), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


async def main(uri: str, mode: str, received: Path | None) -> None:
    decoder = None
    if mode == "real":
        from pocketsphinx import Decoder

        decoder = Decoder(samprate=16000, loglevel="FATAL")
    server = AsyncServer.from_uri(uri)
    await server.run(partial(Handler, mode, decoder, received))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]) if sys.argv[3:] else None))
