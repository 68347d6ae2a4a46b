"""The realtime stand-in's speech endpoint (`POST /v1/audio/speech`), which the agent's
`speak` goes through: the plugin's real `openai.TTS` gets audio from it, and it refuses what
OpenAI's speech endpoint refuses."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from livekit.plugins import openai
from pydantic import SecretStr

from agent.session import speech_tts
from agent.settings import AgentSettings
from devkit.openai_realtime import SAMPLE_RATE, FakeRealtimeServer


async def synthesize(tts: openai.TTS, text: str) -> float:
    """Seconds of audio the plugin produced for `text`."""
    samples = 0
    async for event in tts.synthesize(text):
        samples += event.frame.samples_per_channel
    await tts.aclose()
    return samples / SAMPLE_RATE


@pytest.mark.parametrize(
    ("model", "stream_format"), [("gpt-4o-mini-tts", "sse"), ("tts-1", "audio")]
)
async def test_the_plugin_gets_audio_for_the_words(
    realtime_server: FakeRealtimeServer, model: str, stream_format: str
) -> None:
    tts = openai.TTS(
        model=model,
        voice="marin",
        base_url=realtime_server.base_url,
        api_key="sk-test",
        response_format="pcm",
    )
    seconds = await synthesize(tts, "Twenty characters!!")
    assert seconds == pytest.approx(19 * realtime_server.script.ms_per_char / 1000, abs=0.011)
    [request] = realtime_server.speech_requests
    assert request.input == "Twenty characters!!"
    assert request.body["stream_format"] == stream_format
    assert request.headers["Authorization"] == "Bearer sk-test"


async def test_the_agents_speech_tts_is_served(realtime_server: FakeRealtimeServer) -> None:
    settings = AgentSettings.model_construct(
        openai_api_key=SecretStr("sk-agent"),
        openai_base_url=realtime_server.base_url,
        openai_voice="cedar",
        openai_tts_model="gpt-4o-mini-tts",
        openai_tts_voice=None,
    )
    assert await synthesize(speech_tts(settings), "Word for word.") > 0.2
    body = realtime_server.speech_requests[0].body
    assert body["voice"] == "cedar" and body["response_format"] == "pcm"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"model": "tts-1", "voice": "ash", "input": "x", "volume": 3},
            400,
            "Unrecognized request",
        ),
        ({"model": "tts-1", "voice": "ash"}, 400, "'input'"),
        ({"model": "tts-1", "input": "x"}, 400, "'voice'"),
        ({"model": "tts-1", "voice": "ash", "input": "x" * 4097}, 400, "string too long"),
        ({"model": "tts-1", "voice": "ash", "input": 5}, 400, "Invalid type"),
        ({"model": "tts-1", "voice": "robot", "input": "x"}, 400, "voice"),
        ({"model": "tts-1", "voice": "ash", "input": "x", "speed": 9}, 400, "speed"),
        ({"model": "tts-1", "voice": "ash", "input": "x"}, 400, "'pcm' only"),  # mp3 default
        (
            {
                "model": "tts-1",
                "voice": "ash",
                "input": "x",
                "response_format": "pcm",
                "stream_format": "sse",
            },
            400,
            "not supported for tts-1",
        ),
        ([1, 2], 400, "parse the JSON"),
    ],
)
async def test_it_refuses_what_the_service_refuses(
    realtime_server: FakeRealtimeServer, body: Any, status: int, fragment: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{realtime_server.base_url}/audio/speech",
            json=body,
            headers={"Authorization": "Bearer sk-test"},
        ) as response,
    ):
        answer = await response.json()
    assert response.status == status
    assert answer["error"]["type"] == "invalid_request_error"
    assert fragment in answer["error"]["message"]
    assert realtime_server.speech_requests == []


async def test_it_wants_a_key(realtime_server: FakeRealtimeServer) -> None:
    body = {"model": "tts-1", "voice": "ash", "input": "x", "response_format": "pcm"}
    url = f"{realtime_server.base_url}/audio/speech"
    realtime_server.script.api_key = "sk-right"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body) as response:
            assert response.status == 401
        async with http.post(url, json=body, headers={"Authorization": "Bearer sk-x"}) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_api_key"
        async with http.post(
            url, json=body, headers={"Authorization": "Bearer sk-right"}
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "audio/pcm"
            assert len(await response.read()) == 1 * 20 * SAMPLE_RATE * 2 // 1000
    assert len(realtime_server.speech_requests) == 1
