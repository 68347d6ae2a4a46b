"""The worker: an `AgentServer` sized for avatar sessions, its prewarm, and its entrypoint."""

from __future__ import annotations

import gc
import time

from livekit.agents import AgentServer, JobExecutorType, JobProcess
from livekit.agents.utils import http_context
from livekit.plugins import silero

from agent.admission import load_function, load_threshold
from agent.avatar import prewarm_avatar
from agent.dynamics import DynamicsSettings, warm_up
from agent.entrypoint import entrypoint
from agent.process_state import ProcessState
from agent.settings import AgentSettings, AvatarMode
from common import logs, noise
from common.logs import describe
from common.settings import load_settings
from webhooks import WebhookSettings

log = logs.get_logger("agent.worker")


def prewarm(proc: JobProcess) -> None:
    """Once per job process: settings, structured logs, Silero VAD (unless AGENT_LOCAL_VAD is
    off), the avatar runtime."""
    started = time.perf_counter()
    noise.quiet_short_jwt_keys()  # a job process does not inherit the main process's filters
    settings = load_settings(AgentSettings)
    dynamics = load_settings(DynamicsSettings)
    webhook_settings = load_settings(WebhookSettings)
    logs.register_secrets(settings.secret_values() + webhook_settings.secret_values())
    logs.configure_structlog()
    ProcessState(
        settings,
        dynamics,
        webhook_settings,
        # else barge-ins come from the realtime model's turn detection
        vad=silero.VAD.load() if settings.agent_local_vad else None,
        bithuman_runtime=prewarm_avatar(settings.avatar),
    ).attach(proc)
    # the first realtime connection of a job would otherwise parse the whole CA bundle on the
    # event loop (170-600 ms measured by benchmarks/e2e_latency_bench.py); livekit caches it
    http_context._create_ssl_context()
    if settings.avatar_mode is not AvatarMode.NONE and dynamics.dynamics_enabled:
        warm_up()  # the gesture matcher's Unicode tables, once per process
    # what prewarm loaded lives as long as the process: keep the collector from re-scanning it
    # on every full collection (tens of ms of pause in the middle of a conversation)
    gc.freeze()
    log.info(
        "process prewarmed",
        elapsed_s=round(time.perf_counter() - started, 3),
        avatar=settings.avatar_mode.value,
    )


class Worker(AgentServer):
    """livekit's CLI logs a worker that stops on an error (LiveKit unreachable after its
    retries, a refused key, a port in use) and exits 0; this one keeps the reason, so the
    command can exit non-zero and a supervisor restarts it."""

    failure: str | None = None

    async def run(self, *, devmode: bool = False, unregistered: bool = False) -> None:
        try:
            await super().run(devmode=devmode, unregistered=unregistered)
        except Exception as exc:
            self.failure = describe(exc)


def build_server(settings: AgentSettings) -> Worker:
    options: dict[str, object] = {}
    if settings.agent_idle_processes is not None:
        options["num_idle_processes"] = settings.agent_idle_processes
    if settings.agent_http_port is not None:
        options["port"] = settings.agent_http_port
    server = Worker(
        # from our settings, so values in `.env` reach livekit (it reads only the environment)
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=(
            settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else None
        ),
        max_retry=settings.agent_connect_retries,
        setup_fnc=prewarm,
        load_threshold=load_threshold(settings),
        load_fnc=load_function(settings),
        job_executor_type=JobExecutorType(settings.agent_job_executor),
        job_memory_warn_mb=settings.agent_memory_warn_mb,
        job_memory_limit_mb=settings.agent_memory_limit_mb,
        drain_timeout=settings.agent_drain_timeout,
        initialize_process_timeout=settings.process_init_timeout,
        **options,  # type: ignore[arg-type]
    )
    # With a name, LiveKit dispatches this worker only to rooms whose token or an explicit
    # dispatch asks for it; without one, to every new room.
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server
