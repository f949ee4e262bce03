"""Talk to the model of the current run: the tuned weights, the base model (adapter
off), or both side by side. The dashboard answers only while training is paused or
over, because the weights must not change under a reply."""

from __future__ import annotations

import html

import ipywidgets as widgets

from workbench.ui.render import chat_html

MODES = ("tuned", "base", "both")


class ChatPanel(widgets.VBox):
    def __init__(self, reply, **kwargs):
        """`reply(messages, base)` returns the model's next turn or raises WorkbenchError."""
        super().__init__(**kwargs)
        self._reply = reply
        self.turns: list[tuple[str, str]] = []  # (speaker, text), what the transcript shows
        self.messages: list[dict] = []  # the conversation the model sees
        self.transcript = widgets.HTML(chat_html([]))
        self.mode = widgets.ToggleButtons(options=MODES, value="tuned",
                                          tooltips=["the fine-tuned model",
                                                    "the base model, adapter disabled",
                                                    "both, side by side"])
        self.text = widgets.Text(placeholder="Ask the model something and press Enter",
                                 layout=widgets.Layout(width="40em"), continuous_update=False)
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.clear_button = widgets.Button(description="New conversation")
        self.notice = widgets.HTML()
        self.send_button.on_click(lambda _: self.send())
        self.text.observe(lambda change: self.send() if change["new"] else None, names="value")
        self.clear_button.on_click(lambda _: self.clear())
        self.children = [self.mode, self.transcript,
                         widgets.HBox([self.text, self.send_button, self.clear_button]),
                         self.notice]

    def send(self, message: str | None = None) -> dict[str, str]:
        """Send `message` (or the text box) and return the answers by model."""
        from workbench.errors import WorkbenchError

        message = (self.text.value if message is None else message).strip()
        if not message:
            return {}
        self.text.value = ""
        conversation = self.messages + [{"role": "user", "content": message}]
        answers = {}
        try:
            for who in (("tuned", "base") if self.mode.value == "both" else (self.mode.value,)):
                answers[who] = self._reply(conversation, base=who == "base")
        except WorkbenchError as exc:
            self.notice.value = f'<span style="color:#de2d26">{html.escape(str(exc))}</span>'
            return {}
        self.notice.value = ""
        self.turns += [("you", message)] + list(answers.items())
        # The conversation continues with the tuned answer when both were asked.
        self.messages = conversation + [{"role": "assistant",
                                         "content": answers.get("tuned", answers.get("base"))}]
        self.transcript.value = chat_html(self.turns)
        return answers

    def clear(self) -> None:
        self.turns, self.messages = [], []
        self.transcript.value = chat_html([])
