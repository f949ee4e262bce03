"""The dashboard: set up, start, watch, steer, chat with and compare fine-tunes in a notebook.

    from workbench import Dashboard
    dash = Dashboard({"data": {"path": "my.jsonl"}, "train": {"max_steps": 60}})
    dash            # show it; press Start, or call dash.start()

In a notebook someone is looking at, training runs in a worker thread so the buttons
keep working (a click is not delivered while a cell is busy). Headless (papermill,
plain Python) `start()` blocks until the run ends and then leaves the final chart as
a PNG and the samples grid as HTML in the cell, so the executed notebook is a report.
"""

from __future__ import annotations

import html
import threading
import traceback
from pathlib import Path

import ipywidgets as widgets

from workbench.config import RunConfig
from workbench.engine.distributed import expected_world_size
from workbench.engine.follow import RunFollower
from workbench.engine.loaded import LoadedRun, load_run
from workbench.engine.preview import preview
from workbench.engine.run import Run, RunResult
from workbench.engine.rundir import RATINGS
from workbench.engine.steering import FolderControl
from workbench.errors import RunError, WorkbenchError
from workbench.events import Control, RunEnded, RunPaused, RunResumed, fan_out
from workbench.plots.loss import LossChartFile
from workbench.secrets import redact
from workbench.ui.chat import ChatPanel
from workbench.ui.environment import in_kernel, is_interactive
from workbench.ui.feedback import FeedbackPanel
from workbench.ui.form import ConfigForm
from workbench.ui.history import HistoryPanel
from workbench.ui.live import LiveView
from workbench.ui.rate import Contender, RatingPanel, default_prompts
from workbench.plots.live import live_chart_png
from workbench.ui.render import preview_html, samples_table_html, status_html
from workbench.ui.reproduce import QUICKSTART, Reproduction, reproduce_html, reproduction

PREVIEW_EXAMPLES = 3
CHAT_STATES = ("paused", "finished", "stopped")
SETUP_TAB, TRAINING_TAB, CHAT_TAB, RATE_TAB, TEACH_TAB, HISTORY_TAB = range(6)


class Dashboard(widgets.VBox):
    """One widget to configure, run, watch and compare fine-tunes."""

    def __init__(self, config: RunConfig | dict | None = None, *,
                 interactive: bool | None = None, redraw_seconds: float = 1.0, sinks=(),
                 notebook: str | None = QUICKSTART, notebook_parameters: dict | None = None,
                 **kwargs):
        """`sinks` receive every event of every run, after the dashboard's own views.
        `notebook` and `notebook_parameters` (its parameter -> config field) are what
        Reproduce shows a headless command for (the quickstart's by default)."""
        super().__init__(**kwargs)
        self.notebook, self.notebook_parameters = notebook, notebook_parameters
        self.extra_sinks = list(sinks)
        self.interactive = is_interactive() if interactive is None else interactive
        self.form = ConfigForm()
        if isinstance(config, RunConfig):
            self.form.set_config(config)
        elif config:
            self.form.set_values(config)
        self.live = LiveView(redraw_seconds)
        self.chat_panel = ChatPanel(self._reply)
        self.history = HistoryPanel(self.form.values()["output"]["runs_dir"],
                                    on_open=lambda path: self._guarded(lambda: self.open_run(path)))
        self.control: Control | None = None
        self.run: Run | None = None
        self.opened: LoadedRun | None = None  # a finished run opened for the Chat tab
        self.result: RunResult | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.attached = None  # the folder of a run in another process this dashboard follows
        self.launch = None  # distributed.nproc > 1: the processes this dashboard started
        self._detach = threading.Event()
        self._build()
        self._set_buttons("idle")
        self.add_class("workbench-dashboard")  # a stable hook for styling and browser tests

    # -- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        def button(label, icon, style, action):
            made = widgets.Button(description=label, icon=icon, button_style=style)
            made.on_click(lambda _: self._guarded(action))
            return made

        self.start_button = button("Start", "play", "success", self.start)
        self.pause_button = button("Pause", "pause", "warning", self.pause)
        self.resume_button = button("Resume", "play", "info", self.resume)
        self.stop_button = button("Stop", "stop", "danger", self.stop)
        self.save_button = button("Save checkpoint now", "save", "", self.save_now)
        self.preview_button = button("Preview data", "eye", "", self.preview_data)
        self.preview = widgets.HTML()
        self.reproduce_button = button("Reproduce", "terminal", "", self.reproduce)
        self.reproduce_button.tooltip = ("the YAML config and the commands that rerun this "
                                         "setup headless")
        self.reproduce_box = widgets.HTML()
        self.error_text = widgets.HTML()
        self.error_pane = widgets.Accordion(children=[self.error_text], titles=("traceback",),
                                            selected_index=None,
                                            layout=widgets.Layout(display="none"))
        self.form.on_change(lambda problems: self._form_changed(problems))
        controls = widgets.HBox([self.start_button, self.pause_button, self.resume_button,
                                 self.stop_button, self.save_button])
        setup = widgets.VBox([self.form, widgets.HBox([self.preview_button, self.reproduce_button]),
                              self.reproduce_box, self.preview])
        train = widgets.VBox([self.live.chart, widgets.HTML("<b>Samples</b>"), self.live.samples])
        self.rate_button = button("Rate tuned vs base", "balance-scale", "primary", self.rate)
        self.rate_button.tooltip = ("the same prompts answered by the tuned and the base model, "
                                    "shown blind as A and B; your choices go to ratings.jsonl")
        self.rate_box = widgets.VBox([widgets.HTML(
            "<p>Pause the run, or let it finish (or open a run from History), then compare the "
            "tuned model with the base model blind.</p>"), self.rate_button])
        self.rating: RatingPanel | None = None
        self.feedback = FeedbackPanel(self.chat_model, self.start_config)
        self.tabs = widgets.Tab(children=[setup, train, self.chat_panel, self.rate_box,
                                          self.feedback, self.history],
                                titles=("Setup", "Training", "Chat", "Rate", "Teach", "History"))
        self.children = [controls, self.live.status, self.error_pane, self.tabs]

    def __repr__(self) -> str:  # what a headless notebook shows instead of the widget
        where = f", run_dir={str(self.result.run_dir)!r}" if self.result else ""
        return f"Dashboard(state={self.state!r}{where})"

    # -- controls ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.live.state if self.run is not None or self.attached else "idle"

    def start(self) -> RunResult | None:
        """Start a run with the form's config. Headless: blocks and returns the result;
        interactive: trains in a worker thread and returns None at once."""
        self._refuse_while_going("start")
        config = self.form.config()  # ConfigError lists every problem
        if expected_world_size(config.distributed) > 1:
            return self._start_processes(config)
        self._clear_for(Control())
        sinks = [self.live, self._follow_pauses, LossChartFile()] + self.extra_sinks
        if not self.interactive:
            from workbench.console import ConsoleSink

            sinks.append(ConsoleSink())
        self.run = Run(config, sinks=sinks, control=self.control)
        self._show_going()
        self.live.show_status()
        if not self.interactive:
            self._execute(raise_errors=True)
            self._show_report()
            return self.result
        self._thread = threading.Thread(target=self._execute, name="workbench-training",
                                        daemon=True)
        self._thread.start()
        return None

    def _start_processes(self, config: RunConfig) -> RunResult | None:
        """distributed.nproc > 1: the run trains in processes of its own, started with
        accelerate launch (a notebook's kernel cannot host them), their output in
        launch.log in the run folder; the dashboard follows the folder as if attached.
        Headless, it blocks until they end."""
        from workbench.engine.launch import launch_new_run

        launch = launch_new_run(config, source_args=[])
        self._show_following(RunFollower(launch.run_dir), launch)
        self.live.note = (f"{expected_world_size(config.distributed)} processes started with "
                          f"accelerate; their output: {launch.log}")
        self.live.show_status()
        if not self.interactive:
            self._thread.join()
            return self.result
        return None

    def attach(self, run_dir, poll_seconds: float = 0.5) -> "Dashboard":
        """Follow a run that trains in another process (`workbench train` in a terminal, a
        papermill job, a cluster node on a shared filesystem) from its folder: the status,
        live chart and samples as its files grow, and Pause / Resume / Stop / Save sent as
        requests through the folder. Closing the dashboard leaves that run going."""
        self._refuse_while_going("attach")
        follower = RunFollower(run_dir)  # a folder that is not a run: says so
        status = follower.status
        if status != "running":
            raise RunError(f"{run_dir} is not running (status: {status}); open it from the "
                           "History tab to chat with it or rate it")
        config = follower.folder.read_config()  # before any state changes: it may refuse
        self.form.set_config(config)  # Setup shows what it trains
        self._show_following(follower, None, poll_seconds)
        return self

    def _show_following(self, follower: RunFollower, launch, poll_seconds: float = 0.5) -> None:
        """Follow a run in other processes (`launch`: the ones started here, if any) from its
        folder, in a worker thread, with the controls sending requests through the folder."""
        self._clear_for(FolderControl(follower.folder.path), attached=follower.folder.path)
        self.run, self.launch = None, launch
        self._detach.clear()
        self._show_going()
        self._thread = threading.Thread(target=self._follow, args=(follower, poll_seconds),
                                        name="workbench-following", daemon=True)
        self._thread.start()

    def _clear_for(self, control, attached=None) -> None:
        """Forget the last run's result, model and views before a new one is started or
        followed."""
        self.control, self.attached, self.error, self.result = control, attached, None, None
        self.opened = None  # free its memory: the new run's model is the one to talk to
        self.live.reset()
        self.chat_panel.clear()
        self.error_pane.layout.display = "none"

    def _show_going(self) -> None:
        self.form.set_disabled(True)
        self._set_buttons("running")
        self.tabs.selected_index = TRAINING_TAB

    def _show_ended(self, runs_dir) -> None:
        self.form.set_disabled(False)
        self._set_buttons("ended")
        self.history.refresh(runs_dir)

    def detach(self) -> None:
        """Stop following an attached run; the run goes on in its own process."""
        self._detach.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _follow(self, follower: RunFollower, poll_seconds: float) -> None:
        sinks = fan_out([self.live, self._follow_pauses, self._keep_result] + self.extra_sinks)
        launch = self.launch
        try:
            while not self._detach.is_set():
                gone = launch is not None and not launch.running()
                if gone:
                    launch.finish()  # processes that died before the run began say why
                try:
                    events = follower.poll()
                except OSError:  # a file caught mid-replace, a slow network disk: next poll
                    events = []
                for event in events:
                    sinks(event)
                if follower.ended or gone:
                    break
                self._detach.wait(poll_seconds)
        except Exception as exc:  # the folder is unreadable: the run itself may go on
            self.live.note = (f"lost track of {follower.folder.path.name} ({exc}); the run may "
                              f"still be going: attach again, or workbench stop "
                              f"{follower.folder.path}")
            self.live.show_status()
        finally:
            self._show_ended(follower.folder.path.parent)

    def start_config(self, config: RunConfig) -> RunResult | None:
        """Put `config` in the Setup form and start it (what Teach's "Train on my feedback"
        does)."""
        self.form.set_config(config)
        return self.start()

    def pause(self) -> None:
        """Pause after the current optimizer step; the model stays in memory."""
        self._require_run().pause()
        self._set_buttons("paused")
        self._note("pausing after this step…")

    def resume(self) -> None:
        self._require_run().resume()
        self._set_buttons("running")

    def stop(self) -> None:
        """Stop after the current optimizer step, saving a checkpoint and the adapter."""
        self._require_run().stop()
        self._set_buttons("stopping")
        self._note("stopping after this step…")

    def save_now(self) -> None:
        """Save a resumable checkpoint at the end of this step (at once when paused)."""
        self._require_run().save_now()
        self._note("saving a checkpoint…")

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Block until the worker thread ends (for scripts and tests); return the result."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def chat(self, message: str, model: str = "tuned") -> dict[str, str]:
        """Ask the current run's model; model is `tuned`, `base` or `both`."""
        self.chat_panel.mode.value = model
        return self.chat_panel.send(message)

    def close(self) -> None:
        """Stop any run trained in this kernel (an attached run, or one launched in processes
        of its own, goes on), free the model and close every widget of the dashboard."""
        self._detach.set()
        if self.control is not None and not self.attached:
            self.control.stop()
        self.wait(timeout=60)
        self.run = self.opened = None
        for child in _descendants(self):
            child.close()
        super().close()

    # -- the run -------------------------------------------------------------------------

    def _execute(self, raise_errors: bool = False) -> None:
        try:
            self.result = self.run.execute()
        except BaseException as exc:
            self._show_failure(exc)
            if raise_errors:
                raise
        finally:
            self._show_ended(self.run.config.output.runs_dir)

    def _keep_result(self, event) -> None:
        """An attached or launched run's end, as the result a started run would give."""
        if isinstance(event, RunEnded):
            self.result = RunResult(event.status, Path(event.run_dir), event.summary)
            if event.error:
                self.error = event.error

    def _follow_pauses(self, event) -> None:
        """A pause or resume asked from elsewhere (`workbench pause RUN_DIR` in a terminal)
        shows in the buttons as if pressed here."""
        if isinstance(event, RunPaused):
            self._set_buttons("paused")
            if self.attached:  # its model is in the other process, not here
                self.live.note = "paused in its own process: Resume here (or workbench resume)"
                self.live.show_status()
        elif isinstance(event, RunResumed):
            self._set_buttons("stopping" if self.control.stop_requested else "running")

    def _show_failure(self, exc: BaseException) -> None:
        expected = isinstance(exc, WorkbenchError)
        self.error = str(exc) if expected else redact(f"{type(exc).__name__}: {exc}")
        self.live.state = "failed"
        self.live.status.value = status_html("failed", self.error.splitlines()[0]) + (
            f'<pre style="color:#de2d26;white-space:pre-wrap">{html.escape(self.error)}</pre>'
            if "\n" in self.error else "")
        if not expected:
            self.error_text.value = (f'<pre style="white-space:pre-wrap;font-size:85%">'
                                     f"{html.escape(redact(traceback.format_exc()))}</pre>")
            self.error_pane.layout.display = None

    def _show_report(self) -> None:
        """Headless: leave the final chart and the samples grid as static cell outputs."""
        if not in_kernel():
            return
        from IPython.display import HTML, Image, display

        display(Image(live_chart_png(self.live.history,
                                     title=f"{self.result.run_dir.name}: {self.result.status}")))
        display(HTML(samples_table_html(self.live.base, self.live.by_step, self.live.prompts)))

    def _refuse_while_going(self, doing: str) -> None:
        if self._thread is not None and self._thread.is_alive():
            if self.attached:
                raise RunError(f"this dashboard follows {self.attached.name}; dash.detach() "
                               f"first (that run goes on), then {doing}")
            raise RunError(f"a run is going; stop it (or let it finish) first, then {doing}")

    def _require_run(self) -> Control:
        if self.control is None or self._thread is None or not self._thread.is_alive():
            raise RunError("no run is going; press Start first")
        return self.control

    def chat_model(self) -> LoadedRun:
        """What the Chat tab talks to: a run opened with `open_run`, else the current run's
        model while it is paused or over (its weights must not change under a reply)."""
        if self.opened is not None:
            return self.opened
        if self.attached:
            raise RunError(f"{self.attached.name} is trained by another process, so its model "
                           "is not here; once it has ended, open it from the History tab (or "
                           "dash.open_run) to chat")
        if self.run is None or self.run.loaded is None:
            raise RunError("no model yet: start a run, then pause it or let it finish to chat "
                           "(or open a finished run from the History tab)")
        if self.state not in CHAT_STATES:
            raise RunError(f"the run is {self.state}; press Pause to chat with the live "
                           "weights, then Resume")
        return self.run.loaded

    def open_run(self, run_dir) -> LoadedRun:
        """Load a finished run folder (`load_run`) and make it what the Chat tab talks to."""
        self._refuse_while_going("open another model")
        self.opened = load_run(run_dir)
        self.chat_panel.clear()
        self.chat_panel.notice.value = html.escape(f"talking to {self.opened.name}")
        self.tabs.selected_index = CHAT_TAB
        return self.opened

    def rate(self, prompts: list[str] | None = None) -> RatingPanel:
        """Open the Rate tab on the chat model: tuned against base, blind, on `prompts` (the
        sample prompts and held-out prompts by default); ratings go to the run folder."""
        model = self.chat_model()
        if prompts is None:
            prompts = default_prompts(model)
        if self.rating is not None:
            self.rating.close()
        self.rating = RatingPanel(Contender("tuned", model), Contender("base", model, base=True),
                                  prompts, model.run_dir / RATINGS)
        self.rate_box.children = [self.rate_button, self.rating]
        self.tabs.selected_index = RATE_TAB
        return self.rating

    def _reply(self, messages: list[dict], base: bool) -> str:
        return self.chat_model().reply(messages, base=base)

    # -- setup tab -----------------------------------------------------------------------

    def preview_data(self) -> None:
        """Show the first examples as the model will see them, trained text highlighted."""
        self.preview.value = "<i>reading the data and the model's tokenizer…</i>"
        shown = preview(self.form.config(), PREVIEW_EXAMPLES)
        self.preview.value = preview_html(
            shown.examples, f"{shown.total} examples, format {shown.format}; the first "
            f"{len(shown.examples)}:")

    def reproduce(self) -> Reproduction:
        """Show (and return) the YAML config and the `workbench train`, `workbench notebook
        run` and `papermill` commands that rerun the form's setup headless."""
        made = reproduction(self.form.config(), self.notebook, self.notebook_parameters)
        self.reproduce_box.value = reproduce_html(made)
        return made

    def _form_changed(self, problems: list[str]) -> None:
        if self.run is None or self.state not in ("running", "paused", "stopping"):
            self.start_button.disabled = bool(problems)
        runs_dir = self.form.inputs["output.runs_dir"].value.strip()
        if runs_dir and runs_dir != str(self.history.runs_dir):
            self.history.refresh(runs_dir)

    # -- helpers -------------------------------------------------------------------------

    def _guarded(self, action) -> None:
        """Run a button's action; show a WorkbenchError in the status line, not a traceback
        that JupyterLab would hide (callback output goes nowhere visible)."""
        try:
            action()
        except WorkbenchError as exc:
            self._note_error(str(exc))
        except Exception as exc:  # a bug: keep the traceback where the user can open it
            self._show_failure(exc)

    def _note(self, text: str) -> None:
        self.live.note = text
        self.live.show_status()

    def _note_error(self, text: str) -> None:
        self.live.status.value = status_html(self.state, "") + (
            f'<pre style="color:#de2d26;white-space:pre-wrap">{html.escape(text)}</pre>')

    def _set_buttons(self, phase: str) -> None:
        going = phase in ("running", "paused", "stopping")
        self.start_button.disabled = going or bool(self.form.problems())
        self.pause_button.disabled = phase != "running"
        self.resume_button.disabled = phase != "paused"
        self.stop_button.disabled = phase not in ("running", "paused")
        self.save_button.disabled = phase not in ("running", "paused")


def _descendants(widget) -> list:
    found = []
    for child in getattr(widget, "children", ()):
        found += _descendants(child) + [child]
    return found
