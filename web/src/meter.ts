// The microphone's level on a <meter>, about 20 times a second while the track is live.
import { createAudioAnalyser, type LocalAudioTrack } from "livekit-client";

const INTERVAL_MS = 50;
const FLOOR_DB = -60; // shown as empty; 0 dBFS is full

function level(rms: number): number {
  const db = 20 * Math.log10(Math.max(rms, 1e-6));
  return Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
}

export class LevelMeter {
  private stop: (() => void) | null = null;

  constructor(private readonly meter: HTMLMeterElement) {}

  follow(track: LocalAudioTrack): void {
    this.release();
    const { calculateVolume, cleanup } = createAudioAnalyser(track);
    const timer = window.setInterval(() => {
      this.meter.value = track.isMuted ? 0 : level(calculateVolume());
    }, INTERVAL_MS);
    this.stop = () => {
      window.clearInterval(timer);
      void cleanup();
    };
  }

  release(): void {
    this.stop?.();
    this.stop = null;
    this.meter.value = 0;
  }
}
