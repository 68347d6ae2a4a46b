"""The conversation: an `AgentSession` on OpenAI Realtime with the prewarmed Silero VAD."""

from __future__ import annotations

from livekit.agents import NOT_GIVEN, Agent, AgentSession, vad
from livekit.plugins import openai
from openai.types.realtime import AudioTranscription

from agent.settings import AgentSettings
from common.logs import get_logger

log = get_logger("agent.session")


class AvatarAgent(Agent):
    """The persona. Greets once it enters, which happens after the avatar is ready."""

    def __init__(self, *, instructions: str, greeting: str) -> None:
        super().__init__(instructions=instructions)
        self._greeting = greeting

    async def on_enter(self) -> None:
        # Realtime models have no say(): the greeting is a generated reply.
        self.session.generate_reply(instructions=self._greeting)


def realtime_model(settings: AgentSettings) -> openai.realtime.RealtimeModel:
    return openai.realtime.RealtimeModel(
        model=settings.openai_realtime_model,
        voice=settings.openai_voice,
        api_key=settings.openai_api_key.get_secret_value(),
        # User transcripts (dynamics, webhooks, logs) exist only with this on.
        input_audio_transcription=AudioTranscription(model=settings.openai_transcription_model),
        base_url=settings.openai_base_url or NOT_GIVEN,
    )


def speech_tts(settings: AgentSettings) -> openai.TTS:
    """The voice of context `speak` commands, said word for word: Realtime has no say(), and
    instructions to a Realtime model are not verbatim. Same key and base URL as Realtime; PCM,
    so nothing needs decoding. The model's own replies still come from Realtime."""
    return openai.TTS(
        model=settings.openai_tts_model,
        voice=settings.openai_tts_voice or settings.openai_voice,
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url or NOT_GIVEN,
        response_format="pcm",
    )


def build_session(settings: AgentSettings, *, vad_model: vad.VAD | None) -> AgentSession[None]:
    return AgentSession(
        llm=realtime_model(settings),
        vad=vad_model,
        # used only by session.say() (context `speak`); no markdown or emoji filtering, so
        # the words said are the words sent
        tts=speech_tts(settings) if settings.context_commands else NOT_GIVEN,
        tts_text_transforms=None,
        turn_handling={
            # OpenAI's server-side VAD ends the user's turns; Silero (local, unless
            # AGENT_LOCAL_VAD is off: then the server's speech_started) catches barge-ins.
            "turn_detection": "realtime_llm",
            # A remote avatar cannot pause its stream, so "resume after a false
            # interruption" would leave the avatar and the transcript out of step.
            "interruption": {"resume_false_interruption": False},
        },
    )


def build_agent(settings: AgentSettings) -> AvatarAgent:
    return AvatarAgent(instructions=settings.instructions, greeting=settings.agent_greeting)
