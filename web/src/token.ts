// A token from the token server's POST /token (LiveKit's standard token-endpoint shape).

export interface Connection {
  serverUrl: string;
  participantToken: string;
  roomName: string;
}

/** A failure worth showing to the person at the page, in words they can act on. */
export class TokenError extends Error {
  constructor(
    message: string,
    readonly needsApiKey = false,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: string;
  code?: string;
}

export async function fetchConnection(
  endpoint: string,
  request: { room: string; displayName: string; apiKey: string },
): Promise<Connection> {
  const body: Record<string, string> = {};
  if (request.room) body.room_name = request.room;
  if (request.displayName) body.participant_name = request.displayName;
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (request.apiKey) headers["X-API-Key"] = request.apiKey;

  let response: Response;
  try {
    response = await fetch(endpoint, { method: "POST", headers, body: JSON.stringify(body) });
  } catch {
    // fetch rejects only when no HTTP answer came at all
    throw new TokenError(
      `The token server is unreachable (${endpoint}). Is it running (python -m token_server)?`,
    );
  }
  const answer = (await response.json().catch(() => null)) as
    | (ErrorBody & { server_url?: string; participant_token?: string; room_name?: string })
    | null;
  if (!response.ok) {
    const reason = answer?.error ? `${answer.error} (${answer.code ?? response.status})` : `HTTP ${response.status}`;
    if (response.status === 401) {
      throw new TokenError(
        `The token server needs an API key: enter it under Settings. ${reason}`,
        true,
      );
    }
    throw new TokenError(`The token server refused: ${reason}`);
  }
  if (!answer?.server_url || !answer.participant_token) {
    throw new TokenError("The token server's answer has no server_url and participant_token.");
  }
  return {
    serverUrl: answer.server_url,
    participantToken: answer.participant_token,
    roomName: answer.room_name ?? "",
  };
}
