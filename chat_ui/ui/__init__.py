"""The parts of the chat page, one module per concept.

- `labels`: the page's translatable texts, and the runtime language switch.
- `session`: what the page shows of one conversation (turns, citations, selection).
- `chat`: the chat column with its send, stop, retry and new-conversation buttons.
- `sources`: the sources panel beside the chat and its page viewer.
- `settings`: per-request answer settings (thinking, number of sources, temperature).
- `feedback`: thumbs up or down, with a comment, on one answer.
- `history`: the signed-in user's past conversations, and their export.
- `page`: the built page's components and the context its handlers share.
- `history_wiring`: the history panel's events.
- `layout`: builds the page from these parts and wires the other events between them.
"""
