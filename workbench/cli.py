"""The `workbench` command. The edge: a WorkbenchError becomes one clear message and
exit code 2; set WORKBENCH_DEBUG=1 to see the traceback instead."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from workbench.errors import WorkbenchError

EPILOG = ("examples:\n"
          "  workbench demo\n"
          "  workbench validate config.yaml --set train.max_steps=50\n"
          "  workbench train config.yaml --set data.path=my.jsonl\n"
          "  workbench train --resume runs/my-run-20261122-101500\n"
          "  workbench generate runs/my-run-20261122-101500 --prompt \"Hello\"\n"
          "  workbench notebook run notebooks/01-quickstart.ipynb -p max_steps 20\n"
          "  workbench sweep notebooks/01-quickstart.ipynb -p learning_rate 1e-4,3e-4 -p lora_r 8,16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="LoRA fine-tuning of small open language models.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="fine-tune the demo model on the bundled task and "
                               "compare base vs tuned answers")
    demo.add_argument("--steps", type=positive_int, default=60, help="optimizer steps (default 60)")
    demo.add_argument("--runs-dir", default="runs")
    demo.add_argument("--profile", choices=("laptop", "workshop"), default="laptop",
                      help="workshop: half the batch per pass and gradient checkpointing, "
                      "for about 2 GB of memory")

    validate = commands.add_parser("validate", help="check a config without loading anything")
    validate.add_argument("config", nargs="?")
    validate.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    validate.add_argument("--example", action="store_true", help="print a starter config")

    train = commands.add_parser("train", help="fine-tune as a config says")
    train.add_argument("config", nargs="?")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last "
                       "checkpoint")
    train.add_argument("--quiet", action="store_true")

    runs = commands.add_parser("runs", help="list runs and their status")
    runs.add_argument("--runs-dir", default="runs")

    generate = commands.add_parser("generate", help="answer prompts with a run's tuned model")
    generate.add_argument("run_dir")
    generate.add_argument("--prompt", action="append", required=True)
    generate.add_argument("--base", action="store_true", help="use the base model (adapter off)")
    generate.add_argument("--max-new-tokens", type=positive_int, help="default: the run's "
                          "sample.max_new_tokens")

    notebook = commands.add_parser("notebook", help="run a notebook headless with papermill")
    notebook_commands = notebook.add_subparsers(dest="notebook_command", required=True)
    run_notebook = notebook_commands.add_parser(
        "run", help="execute a notebook top to bottom; the executed copy goes into the run "
        "folder it made (exit 1 naming the cell if a cell fails)")
    run_notebook.add_argument("notebook")
    run_notebook.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                              metavar=("NAME", "VALUE"), help="set a parameter (typed as "
                              "papermill -p types it: int, float, True/False/None, else text)")
    run_notebook.add_argument("--output", metavar="PATH", help="also write the executed "
                              "notebook here")
    run_notebook.add_argument("--timeout", type=positive_int, metavar="SECONDS",
                              help="fail a cell that runs longer than this")
    run_notebook.add_argument("--quiet", action="store_true", help="do not print the cells' output")

    sweep = commands.add_parser("sweep", help="run a notebook over a grid of parameters, then "
                                "compare the runs (results.csv, results.md, loss-overlay.png)")
    sweep.add_argument("notebook")
    sweep.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                       metavar=("NAME", "VALUES"), help="comma-separated values are swept "
                       "(-p lora_r 8,16); a single value is fixed for every point")
    sweep.add_argument("--jobs", type=positive_int, default=1, help="grid points run at once, "
                       "each in its own process (default 1: one after another)")
    sweep.add_argument("--timeout", type=positive_int, metavar="SECONDS",
                       help="fail a cell that runs longer than this")
    return parser


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small; give 1 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args) or 0
    except WorkbenchError as exc:
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the run folder records what was done", file=sys.stderr)
        return 130
    except Exception:  # a bug: keep the traceback, but never print a token in it
        import traceback

        from workbench.secrets import redact

        print(redact(traceback.format_exc()), file=sys.stderr)
        return 1


def cmd_validate(args) -> int:
    from workbench.config import example_yaml, load_config

    if args.example:
        print(example_yaml(), end="")
        return 0
    if not args.config:
        print("error: give a config file, or --example to print one", file=sys.stderr)
        return 2
    config = load_config(args.config, args.set)
    print(f"{args.config}: valid ({config.model.name} on {config.data.path or config.data.train_path})")
    return 0


def cmd_train(args) -> int:
    from workbench.api import resume, train
    from workbench.config import load_config
    from workbench.events import Control

    control = Control()
    install_stop_handlers(control)
    if args.resume:
        if args.config or args.set:
            print("error: --resume continues a run with its saved config; drop the config "
                  "file and --set", file=sys.stderr)
            return 2
        result = resume(args.resume, control=control, quiet=args.quiet)
    else:
        if not args.config:
            print("error: give a config file (workbench validate --example > config.yaml)",
                  file=sys.stderr)
            return 2
        result = train(load_config(args.config, args.set), control=control, quiet=args.quiet)
    return 0 if result.status in ("finished", "stopped") else 1


def install_stop_handlers(control) -> None:
    """SIGTERM and a first Ctrl-C stop at the next step, saving a checkpoint and the adapter;
    a second Ctrl-C aborts at once (the run folder then says failed)."""

    def first_interrupt(*_):
        print("\nstopping after this step (checkpoint and adapter will be saved); "
              "press Ctrl-C again to abort now", file=sys.stderr, flush=True)
        control.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, lambda *_: control.stop())
    signal.signal(signal.SIGINT, first_interrupt)


def cmd_demo(args) -> int:
    from workbench.demo import run_demo

    report = run_demo(runs_dir=args.runs_dir, max_steps=args.steps, profile=args.profile)
    return 0 if report["status"] == "finished" else 1


def cmd_runs(args) -> int:
    from workbench.engine.rundir import list_runs

    rows = list_runs(args.runs_dir)
    if not rows:
        print(f"no runs in {args.runs_dir}/ yet; start one with `workbench demo`")
        return 0
    print(f"{'run':<40} {'status':<18} {'step':>6} {'loss':>8} {'best eval':>10}")
    for row in rows:
        loss = f"{row['final_loss']:.4f}" if row["final_loss"] is not None else "-"
        best = f"{row['best_eval_loss']:.4f}" if row["best_eval_loss"] is not None else "-"
        print(f"{row['run']:<40} {row['status']:<18} {row['step'] or '-':>6} {loss:>8} {best:>10}")
    return 0


def cmd_generate(args) -> int:
    from workbench.api import TunedModel

    model = TunedModel(args.run_dir)
    answers = model.generate(args.prompt, base=args.base, max_new_tokens=args.max_new_tokens)
    for prompt, answer in zip(args.prompt, answers):
        if len(args.prompt) > 1:
            print(f"> {prompt}")
        print(answer)
    return 0


def cmd_notebook(args) -> int:
    from workbench.notebooks.runner import describe_failure, execute, parse_value

    parameters = {name: parse_value(value) for name, value in args.parameter}
    stream = None if args.quiet else sys.stdout
    run = execute(args.notebook, parameters, output=args.output, stdout=stream,
                  stderr=None if args.quiet else sys.stderr, timeout=args.timeout)
    for path in run.executed:
        print(f"executed notebook: {path}")
    if run.failure:
        print(f"error: {args.notebook} failed in {describe_failure(run.failure)}", file=sys.stderr)
        return 1
    return 0


def cmd_sweep(args) -> int:
    from workbench.notebooks.sweep import parse_grid, sweep

    fixed, swept = parse_grid(args.parameter)
    result = sweep(args.notebook, swept, fixed, jobs=args.jobs, timeout=args.timeout)
    print(result.markdown.read_text(encoding="utf-8"))
    return 1 if result.failed else 0


COMMANDS = {"validate": cmd_validate, "train": cmd_train, "demo": cmd_demo, "runs": cmd_runs,
            "generate": cmd_generate, "notebook": cmd_notebook, "sweep": cmd_sweep}

if __name__ == "__main__":
    sys.exit(main())
