"""Speech the robot dog understands: audio in, checked, cut by a VAD, recognised on the device, text out.

    from shadow_edge.speech import make_recognizer, read_wav
    recognizer = make_recognizer("whisper")            # or "pocketsphinx-grammar"
    transcript = recognizer.transcribe(read_wav("cmd.wav"))
    transcript.text, transcript.vad_ms, transcript.asr_ms

- `audio.py`: WAV reading, conversion (rate, channels, sample width) and refusals (`AudioError`, `NoSpeechError`);
- `vad.py`: Silero VAD on onnxruntime (no torch): speech bounds in a file, utterance segmentation of a stream;
- `grammar.py`: the command grammar, its exact-sentence matcher, Whisper's vocabulary prompt;
- `correct.py`: misheard words next to command words snapped to the command vocabulary ("sit dawn" -> "sit down");
- `whisper.py`, `sphinx.py`: the engines; `recognizer.py`: the engine table, `Recognizer`, `Transcript`;
- `capture.py`: microphone capture (pyaudio) -> ring buffer -> VAD -> recogniser, one callback per utterance.

The heavy libraries (faster-whisper, pocketsphinx, onnxruntime, pyaudio; the `audio` extra) are imported only when
an engine, the VAD or the microphone is created. The runtime's text -> program core imports none of this.
"""

from .audio import AudioError, NoSpeechError, read_wav
from .recognizer import DEFAULT_ENGINE, ENGINES, Recognizer, Transcript, make_recognizer, transcribe_wav

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "AudioError",
    "NoSpeechError",
    "Recognizer",
    "Transcript",
    "make_recognizer",
    "read_wav",
    "transcribe_wav",
]
