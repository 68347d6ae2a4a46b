// What the page's address may set: ?room=<name>&name=<display name>&agent_timeout=<s>&mic=off
export interface PageConfig {
  /** Room to join; empty lets the token server pick a fresh one. */
  room: string;
  displayName: string;
  /** Seconds to wait for the agent before saying it did not join. */
  agentTimeoutSeconds: number;
  micOnJoin: boolean;
  /** Same origin only: the API key typed into the page is never sent anywhere else. */
  tokenEndpoint: string;
}

export const DEFAULT_AGENT_TIMEOUT_SECONDS = 20;

export function readConfig(location: Location): PageConfig {
  const params = new URLSearchParams(location.search);
  const timeout = Number(params.get("agent_timeout"));
  return {
    room: params.get("room") ?? "",
    displayName: params.get("name") ?? "",
    agentTimeoutSeconds:
      Number.isFinite(timeout) && timeout > 0 ? Math.min(timeout, 600) : DEFAULT_AGENT_TIMEOUT_SECONDS,
    micOnJoin: params.get("mic") !== "off",
    tokenEndpoint: new URL("token", location.href).href,
  };
}
