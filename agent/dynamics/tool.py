"""A function tool that lets the model perform one of the avatar's gestures itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from livekit.agents.llm import RawFunctionTool, ToolError, function_tool

GestureTool = RawFunctionTool[..., Awaitable[str]]

TOOL_NAME = "perform_gesture"
DESCRIPTION = (
    "Make your on-screen avatar perform a gesture. Use it only when the user asks you to (for"
    " example 'wave at me') or when the moment clearly calls for it, such as a greeting, a"
    " goodbye or a genuinely funny moment; most replies need no gesture. At most one per reply."
    " Never mention this tool or describe the gesture in words."
)


def gesture_tool(gestures: Collection[str], perform: Callable[[str], str]) -> GestureTool:
    """A tool whose `gesture` argument must be one of `gestures`; `perform` fires it and says
    what happened, in words the model can act on."""
    allowed = sorted(gestures)
    schema = {
        "name": TOOL_NAME,
        "description": DESCRIPTION,
        "parameters": {
            "type": "object",
            "properties": {
                "gesture": {
                    "type": "string",
                    "enum": allowed,
                    "description": "The gesture to perform, by its exact name.",
                }
            },
            "required": ["gesture"],
            "additionalProperties": False,
        },
    }

    async def perform_gesture(raw_arguments: dict[str, Any]) -> str:
        gesture = raw_arguments.get("gesture")
        if gesture not in allowed:
            raise ToolError(f"unknown gesture {gesture!r}; choose one of: {', '.join(allowed)}")
        return perform(gesture)

    return function_tool(perform_gesture, raw_schema=schema)
