"""The bitHuman Flutter guide's token endpoint, as the benchmark's reference (needs Flask).

Same behaviour as the guide: the client picks room and identity, one room-join grant (with
livekit-api's permissive defaults), one-hour TTL, no CORS, no auth, no limits. Served by
Flask's own development server like the guide, on port $PORT (3000 by default), but without
the debugger and reloader (`debug=True`) and without per-request log lines, which would only
slow it down further.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from flask import Flask, jsonify, request
from livekit import api

app = Flask(__name__)
LIVEKIT_URL = os.environ["LIVEKIT_URL"]
LIVEKIT_API_KEY = os.environ["LIVEKIT_API_KEY"]
LIVEKIT_API_SECRET = os.environ["LIVEKIT_API_SECRET"]


@app.post("/token")
def create_token() -> object:
    data = request.get_json(silent=True) or {}
    room = data.get("room", "flutter-avatar-room")
    identity = data.get("participant", "Flutter User")
    token = (
        api.AccessToken(LIVEKIT_API_KEY, LIVEKIT_API_SECRET)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_ttl(timedelta(hours=1))
        .to_jwt()
    )
    return jsonify({"token": token, "server_url": LIVEKIT_URL})


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "3000")), threaded=True)
