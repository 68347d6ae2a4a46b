// The conversation as text: transcription streams (topic lk.transcription) of both sides, and
// chat (topic lk.chat).
//
// The agent sends its speech as one stream per segment, in pieces; the user's speech comes as
// a new stream per update of the segment, each holding the whole text so far. Keeping, per
// segment, the text of its latest stream (with that stream's pieces appended) shows both right.
// A segment is final when its stream carries lk.transcription_final=true, which for the agent
// arrives with the stream's end.
import type { TextStreamReader } from "livekit-client";

export const TRANSCRIPTION_TOPIC = "lk.transcription";
export const CHAT_TOPIC = "lk.chat";
const SEGMENT_ID = "lk.segment_id";
const FINAL = "lk.transcription_final";

export type Speaker = "user" | "agent";

export class Transcript {
  private readonly entries = new Map<string, HTMLLIElement>();
  private readonly latestStream = new Map<string, string>();

  constructor(private readonly list: HTMLOListElement) {}

  clear(): void {
    this.list.replaceChildren();
    this.entries.clear();
    this.latestStream.clear();
  }

  async readTranscription(reader: TextStreamReader, speaker: Speaker): Promise<void> {
    const info = reader.info;
    const segment = info.attributes?.[SEGMENT_ID] ?? info.id;
    this.latestStream.set(segment, info.id);
    let text = "";
    try {
      for await (const piece of reader) {
        if (this.latestStream.get(segment) !== info.id) return; // a newer update took over
        text += piece;
        this.show(segment, speaker, text, false);
      }
    } catch {
      // an interrupted reply ends its stream abnormally: keep what was said
    }
    if (this.latestStream.get(segment) !== info.id) return;
    const final = reader.info.attributes?.[FINAL] === "true";
    this.show(segment, speaker, text, final);
  }

  async readChat(reader: TextStreamReader, speaker: Speaker): Promise<void> {
    const text = await reader.readAll();
    this.addChat(speaker, text);
  }

  addChat(speaker: Speaker, text: string): void {
    this.show(`chat-${crypto.randomUUID()}`, speaker, text, true, true);
  }

  private show(segment: string, speaker: Speaker, text: string, final: boolean, chat = false): void {
    if (!text.trim()) return;
    let entry = this.entries.get(segment);
    if (!entry) {
      entry = document.createElement("li");
      entry.className = speaker;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = speaker === "user" ? (chat ? "You (typed)" : "You") : "Agent";
      const words = document.createElement("span");
      words.className = "words";
      entry.append(who, words);
      this.entries.set(segment, entry);
      this.list.append(entry);
    }
    entry.dataset.final = String(final);
    (entry.lastElementChild as HTMLSpanElement).textContent = text;
    // follow the conversation unless the reader scrolled back
    const scroller = this.list.parentElement;
    if (scroller && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80) {
      scroller.scrollTop = scroller.scrollHeight;
    }
  }
}
