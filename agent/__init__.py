"""LiveKit Agents worker: OpenAI Realtime conversation shown through a bitHuman avatar."""
