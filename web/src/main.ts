// The page: a token from the token server, a LiveKit room, the avatar's face and voice, the
// microphone, the transcript, the agent's state and text chat.
import {
  type LocalAudioTrack,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  Room,
  RoomEvent,
  Track,
} from "livekit-client";
import { readConfig } from "./config";
import { LevelMeter } from "./meter";
import { fetchConnection, TokenError } from "./token";
import { CHAT_TOPIC, Transcript, TRANSCRIPTION_TOPIC } from "./transcript";

const AGENT_STATE = "lk.agent.state";
// A cloud avatar is a second agent participant publishing for the agent, and says so here.
const PUBLISH_ON_BEHALF = "lk.publish_on_behalf";
const API_KEY_STORAGE = "token-server-api-key";

function element<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

const ui = {
  status: element<HTMLParagraphElement>("status"),
  alert: element<HTMLDivElement>("alert"),
  video: element<HTMLVideoElement>("avatar"),
  noVideo: element<HTMLParagraphElement>("no-video"),
  state: element<HTMLParagraphElement>("agent-state"),
  start: element<HTMLButtonElement>("start"),
  leave: element<HTMLButtonElement>("leave"),
  mic: element<HTMLButtonElement>("mic"),
  playAudio: element<HTMLButtonElement>("play-audio"),
  apiKey: element<HTMLInputElement>("api-key"),
  settings: document.querySelector<HTMLDetailsElement>("details.settings")!,
  chat: element<HTMLFormElement>("chat"),
  chatInput: element<HTMLInputElement>("chat-input"),
  chatSend: element<HTMLButtonElement>("chat-send"),
  audio: element<HTMLDivElement>("audio"),
};

const config = readConfig(window.location);
const transcript = new Transcript(element<HTMLOListElement>("transcript"));
const meter = new LevelMeter(element<HTMLMeterElement>("mic-level"));
let room: Room | null = null;
let agentWatchdog: number | undefined;

function setStatus(text: string): void {
  ui.status.textContent = text;
}

function showAlert(text: string | null): void {
  ui.alert.textContent = text ?? "";
  ui.alert.hidden = text === null;
}

function isAgent(participant: Participant): boolean {
  return participant.isAgent && !(PUBLISH_ON_BEHALF in participant.attributes);
}

function agentOf(current: Room): RemoteParticipant | undefined {
  return [...current.remoteParticipants.values()].find(isAgent);
}

function showAgentState(participant: Participant | undefined): void {
  const state = participant ? (participant.attributes[AGENT_STATE] ?? "joining") : "absent";
  ui.state.dataset.state = state;
  ui.state.textContent = participant ? `Agent: ${state}` : "Agent: not here";
}

function agentArrived(current: Room): void {
  window.clearTimeout(agentWatchdog);
  showAlert(null);
  setStatus(`Connected to room ${current.name}; the agent is here.`);
  showAgentState(agentOf(current));
}

function watchForAgent(current: Room): void {
  const seconds = config.agentTimeoutSeconds;
  agentWatchdog = window.setTimeout(() => {
    if (room !== current || agentOf(current)) return;
    showAlert(
      `The agent did not join within ${seconds} s. Is the agent running (python -m agent dev) ` +
        "with the AGENT_NAME the token server dispatches, and connected to the same LiveKit server? " +
        "This page keeps waiting.",
    );
    setStatus(`Connected to room ${current.name}; still waiting for the agent.`);
  }, seconds * 1000);
}

function attachTrack(track: RemoteTrack, participant: RemoteParticipant): void {
  if (track.kind === Track.Kind.Video && participant.isAgent) {
    track.attach(ui.video);
    ui.noVideo.hidden = true;
  } else if (track.kind === Track.Kind.Audio) {
    ui.audio.append(track.attach());
  }
}

function detachTrack(track: RemoteTrack): void {
  for (const media of track.detach()) {
    if (media !== ui.video) media.remove();
  }
  if (track.kind === Track.Kind.Video && !ui.video.srcObject) ui.noVideo.hidden = false;
}

function wire(current: Room): void {
  current
    .on(RoomEvent.TrackSubscribed, (track, _publication, participant) => attachTrack(track, participant))
    .on(RoomEvent.TrackUnsubscribed, (track) => detachTrack(track))
    .on(RoomEvent.ParticipantConnected, (participant) => {
      if (isAgent(participant)) agentArrived(current);
    })
    .on(RoomEvent.ParticipantDisconnected, (participant) => {
      if (!isAgent(participant)) return;
      showAgentState(undefined);
      setStatus("The agent left the room.");
    })
    .on(RoomEvent.ParticipantAttributesChanged, (_changed, participant) => {
      if (isAgent(participant)) showAgentState(participant);
    })
    .on(RoomEvent.AudioPlaybackStatusChanged, () => {
      ui.playAudio.hidden = current.canPlaybackAudio;
    })
    .on(RoomEvent.LocalTrackPublished, (publication) => {
      if (publication.source === Track.Source.Microphone && publication.track) {
        meter.follow(publication.track as LocalAudioTrack);
      }
    })
    .on(RoomEvent.Disconnected, () => {
      if (room === current) ended("Disconnected.");
    });
  current.registerTextStreamHandler(TRANSCRIPTION_TOPIC, (reader, from) => {
    void transcript.readTranscription(reader, from.identity === current.localParticipant.identity ? "user" : "agent");
  });
  current.registerTextStreamHandler(CHAT_TOPIC, (reader) => {
    void transcript.readChat(reader, "agent");
  });
}

function setConnected(connected: boolean): void {
  ui.start.hidden = connected;
  ui.start.disabled = false;
  ui.leave.hidden = !connected;
  ui.mic.disabled = !connected;
  ui.chatInput.disabled = !connected;
  ui.chatSend.disabled = !connected;
}

function showMic(on: boolean): void {
  ui.mic.setAttribute("aria-pressed", String(on));
  ui.mic.textContent = on ? "Microphone on" : "Microphone off";
}

async function setMicrophone(current: Room, on: boolean): Promise<void> {
  try {
    await current.localParticipant.setMicrophoneEnabled(on);
    showMic(on);
  } catch (error) {
    showMic(false);
    showAlert(`The microphone is unavailable (${(error as Error).message}); you can still type.`);
  }
}

async function start(): Promise<void> {
  ui.start.disabled = true;
  showAlert(null);
  transcript.clear();
  setStatus("Asking the token server for a token…");
  const apiKey = ui.apiKey.value.trim();
  let connection;
  try {
    connection = await fetchConnection(config.tokenEndpoint, {
      room: config.room,
      displayName: config.displayName,
      apiKey,
    });
  } catch (error) {
    const problem = error instanceof TokenError ? error : new TokenError(String(error));
    showAlert(problem.message);
    if (problem.needsApiKey) {
      ui.settings.open = true;
      ui.apiKey.focus();
    }
    setStatus("Not connected.");
    ui.start.disabled = false;
    return;
  }
  if (apiKey) sessionStorage.setItem(API_KEY_STORAGE, apiKey);

  const current = new Room({ adaptiveStream: true, dynacast: true });
  room = current;
  wire(current);
  setStatus(`Connecting to LiveKit at ${connection.serverUrl}…`);
  try {
    await current.connect(connection.serverUrl, connection.participantToken);
  } catch (error) {
    room = null;
    showAlert(`Could not connect to LiveKit at ${connection.serverUrl}: ${(error as Error).message}`);
    setStatus("Not connected.");
    ui.start.disabled = false;
    return;
  }
  setConnected(true);
  ui.playAudio.hidden = current.canPlaybackAudio;
  if (agentOf(current)) {
    agentArrived(current);
  } else {
    setStatus(`Connected to room ${current.name}; waiting for the agent…`);
    watchForAgent(current);
  }
  await setMicrophone(current, config.micOnJoin);
}

function ended(message: string): void {
  window.clearTimeout(agentWatchdog);
  room = null;
  meter.release();
  showMic(false);
  showAgentState(undefined);
  ui.video.srcObject = null;
  ui.noVideo.hidden = false;
  ui.audio.replaceChildren();
  setConnected(false);
  setStatus(message);
}

ui.start.addEventListener("click", () => void start());
ui.leave.addEventListener("click", () => {
  const current = room;
  ended("You left the room.");
  void current?.disconnect();
});
ui.mic.addEventListener("click", () => {
  if (room) void setMicrophone(room, ui.mic.getAttribute("aria-pressed") !== "true");
});
ui.playAudio.addEventListener("click", () => {
  void room?.startAudio().then(() => (ui.playAudio.hidden = true));
});
ui.chat.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!room || !text) return;
  ui.chatInput.value = "";
  transcript.addChat("user", text);
  room.localParticipant.sendText(text, { topic: CHAT_TOPIC }).catch((error: Error) => {
    showAlert(`The message was not sent: ${error.message}`);
  });
});

ui.apiKey.value = sessionStorage.getItem(API_KEY_STORAGE) ?? "";
setStatus("Ready: press Start to talk to the agent.");
