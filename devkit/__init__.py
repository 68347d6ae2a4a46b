"""Dev-only stand-ins and harness pieces that tests, benchmarks and demos share.

Protocol-level stand-ins for OpenAI Realtime and bitHuman (REST and the cloud avatar service),
the real LiveKit server runner, the end-to-end harness (the agent as a subprocess, users as
LiveKit clients) and the gesture and context-API stand-ins. Not installed by the wheel and not
copied into the image; type-checked and linted like the services. See docs/testing-fakes.md.
"""
