"""The live microphone avatar: the counterpart of bitHuman's avatar-with-microphone example
(see docs/live-microphone-avatar.md).

- `options`: the flags (bitHuman's names) and their environment fallbacks;
- `audio`: 24 kHz chunks, loudness, gain and the 3 s silence rule;
- `sources`: the microphone, a WAV file, the echo speaker;
- `faces`: the placeholder face or a bitHuman `.imx` model;
- `window`, `mp4`: where the frames go;
- `run`: the pipeline between them.
"""
