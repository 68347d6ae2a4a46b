"""Exit statuses of `python -m bithuman_client`, which scripts can rely on."""

from common.settings import EXIT_CONFIG_ERROR

OK = 0
API_ERROR = 1  # the API answered with an error; its `code` is on the error line
USAGE = EXIT_CONFIG_ERROR  # 2: bad settings, arguments or media file; nothing was sent
UNREACHABLE = 3  # no answer: connection refused, DNS failure, timeout (after safe retries)
JOB_FAILED = 4  # the agent's generation ended `failed`
WAIT_TIMEOUT = 5  # --wait-timeout passed while the job still ran; it keeps running
INTERRUPTED = 130  # Ctrl-C; a job being waited for keeps running
