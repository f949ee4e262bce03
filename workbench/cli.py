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
          "  workbench lab                  # the dashboard, in JupyterLab\n"
          "  workbench validate config.yaml --set train.max_steps=50\n"
          "  workbench train config.yaml --set data.path=my.jsonl\n"
          "  workbench train --resume runs/my-run-20261122-101500\n"
          "  workbench pause runs/my-run-20261122-101500   # also stop, resume, save\n"
          "  workbench generate runs/my-run-20261122-101500 --prompt \"Hello\"\n"
          "  workbench data check my.jsonl\n"
          "  workbench notebook run notebooks/01-quickstart.ipynb -p max_steps 20\n"
          "  workbench sweep notebooks/01-quickstart.ipynb -p learning_rate 1e-4,3e-4 -p lora_r 8,16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="LoRA fine-tuning of small open language models.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="fine-tune the demo model on the bundled task and "
                               "compare base vs tuned answers")
    demo.add_argument("--steps", type=positive_int, default=None,
                      help="optimizer steps (default 60; grpo: 30, after 4 supervised ones)")
    demo.add_argument("--runs-dir", default="runs")
    demo.add_argument("--profile", choices=("laptop", "workshop"), default="laptop",
                      help="workshop: half the batch per pass and gradient checkpointing, "
                      "for about 2 GB of memory")
    demo.add_argument("--method", choices=("sft", "dpo", "kto", "grpo"), default="sft",
                      help="sft (default): turn messages into JSON orders; dpo or kto: learn "
                      "to answer in one sentence from preference pairs; grpo: the JSON "
                      "orders from rewards checked by code")

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
    train.add_argument("--nproc", type=positive_int, help="processes per machine, one per GPU "
                       "(distributed.nproc); above 1 the run starts under accelerate launch")
    train.add_argument("--nnodes", type=positive_int, help="machines (distributed.nnodes); "
                       "start the same command on each, with --node-rank and --main-address")
    train.add_argument("--node-rank", type=non_negative_int, default=0,
                       help="this machine's place, 0 to nnodes-1 (node 0 writes the run folder)")
    train.add_argument("--main-address", metavar="HOST", help="node 0's address, for nnodes > 1")
    train.add_argument("--main-port", type=positive_int, help="node 0's port (default 29500)")
    train.add_argument("--run-dir", help="write into this new, empty folder (what the launcher "
                       "passes to its processes)")

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
    evaluate = commands.add_parser(
        "eval", help="score a run's answers against its base model or another run (table of "
        "scorer x model, written to RUN_DIR/eval-<time>.json)")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--against", default="base", metavar="RUN_DIR|base",
                          help="what to compare with (default: the same run, adapter off)")
    evaluate.add_argument("--scorer", action="append", default=[], metavar="NAME",
                          help="exact, json_equal, json_valid, contains, regex:PATTERN, "
                          "max_words:N or module:function; repeat for several (default: the "
                          "run's eval.scorers)")
    evaluate.add_argument("--data", metavar="FILE", help="examples to answer (default: the "
                          "run's eval.data, else its held-out split)")
    evaluate.add_argument("--limit", type=positive_int, metavar="N",
                          help="examples at most (default: the run's eval.max_examples)")
    evaluate.add_argument("--checkpoint", type=positive_int, metavar="STEP",
                          help="score the adapter saved at this step instead of the final one")

    rewards = commands.add_parser("rewards", help="the reward test bench for train.method grpo")
    reward_steps = rewards.add_subparsers(dest="rewards_command", required=True)
    check_rewards = reward_steps.add_parser(
        "check", help="sample answers from the model as the config would start it and run "
        "every reward function on them: mean, spread, groups with no variance, errors")
    check_rewards.add_argument("config")
    check_rewards.add_argument("--set", action="append", default=[],
                               metavar="SECTION.KEY=VALUE")
    check_rewards.add_argument("--prompts", type=positive_int, default=4,
                               help="prompts answered (default 4)")
    check_rewards.add_argument("--answers", type=positive_int, default=8,
                               help="answers shown with their rewards (default 8)")

    lab = commands.add_parser("lab", help="open JupyterLab on the workbench's notebooks (the "
                              "quickstart by default); other options go to jupyter lab",
                              description="Starts JupyterLab with a notebook open; it prints "
                              "the URL and token to open in a browser. In a clone of the "
                              "repository it uses notebooks/ in place; installed without it, "
                              "it first copies the bundled notebooks into ./workbench-notebooks.")
    lab.add_argument("notebook", nargs="?", help="a notebook's name or prefix (02, "
                     "02-your-own-data) or path; default 01-quickstart")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser "
                     "(on a remote machine, open the printed URL yourself)")
    lab.add_argument("--port", type=positive_int, help="the port (default: jupyter's, 8888 or "
                     "the next free one)")
    add_data_parser(commands)
    add_export_parsers(commands)
    add_request_parsers(commands)
    return parser


REQUEST_HELP = {
    "stop": "stop a running run at its next optimizer step (a checkpoint and the adapter are "
            "saved; `workbench train --resume` continues it)",
    "pause": "pause a running run after its current optimizer step (the model stays loaded)",
    "resume": "resume a paused run",
    "save": "save a checkpoint of a running run at its next optimizer step",
}


def add_request_parsers(commands) -> None:
    """stop, pause, resume, save: requests to a run started anywhere, through its folder."""
    for action, help_text in REQUEST_HELP.items():
        request = commands.add_parser(action, help=help_text)
        request.add_argument("run_dir", metavar="RUN_DIR")
        request.add_argument("--wait", type=seconds, default=0, metavar="SECONDS",
                             help="wait up to this long for the run to do it (default: "
                             "send and return)")
        request.set_defaults(action=action)


def add_data_parser(commands) -> None:
    from workbench.config import choices, default
    from workbench.data.dedup import NEAR_THRESHOLD

    data = commands.add_parser("data", help="check, measure and clean a dataset")
    steps = data.add_subparsers(dest="data_command", required=True)
    formats = choices("data.format")

    check = steps.add_parser("check", help="validate a dataset without a model: every "
                             "problem by file and line, or a summary")
    check.add_argument("path")
    check.add_argument("--format", choices=formats, default="auto")
    check.add_argument("--limit", type=int, default=100, metavar="N",
                       help="problems listed at most (0: all; default 100)")

    report = steps.add_parser("report", help="token lengths with a model's tokenizer and chat "
                              "template, truncation, trained share, duplicates")
    report.add_argument("path")
    report.add_argument("--model", help="what model.name accepts: demo (the default), a "
                        "folder, a .gguf file or a hub id (only its tokenizer is loaded)")
    report.add_argument("--config", help="take model, format, max_length, train_on and "
                        "system_prompt from this run config (flags still win)")
    report.add_argument("--max-length", type=positive_int, help="tokens per example "
                        f"(default {default('data.max_length')}, as data.max_length)")
    report.add_argument("--train-on", choices=choices("data.train_on"))
    report.add_argument("--format", choices=formats)
    report.add_argument("--near-threshold", type=fraction, default=NEAR_THRESHOLD,
                        help="Jaccard similarity (character 5-grams) from which two rows count "
                        f"as near duplicates (default {NEAR_THRESHOLD}; 0: do not look for them)")
    report.add_argument("--png", help="histogram file (default: <name>-lengths.png here)")
    report.add_argument("--json", help="also write the report as JSON to this file")

    clean = steps.add_parser("clean", help="drop bad rows, duplicates and rows outside length "
                             "bounds; log why; seeded train / eval split")
    clean.add_argument("path")
    clean.add_argument("-o", "--out", required=True, help="folder for train.jsonl, eval.jsonl, "
                       "dropped.jsonl and clean.json")
    clean.add_argument("--format", choices=formats, default="auto")
    clean.add_argument("--model", help="tokenizer for --min-tokens / --max-tokens")
    clean.add_argument("--min-tokens", type=positive_int)
    clean.add_argument("--max-tokens", type=positive_int)
    clean.add_argument("--min-chars", type=positive_int)
    clean.add_argument("--max-chars", type=positive_int)
    clean.add_argument("--near-threshold", type=fraction, default=NEAR_THRESHOLD,
                       help=f"drop rows this similar to an earlier kept row (default "
                       f"{NEAR_THRESHOLD})")
    clean.add_argument("--keep-near", action="store_true", help="drop exact duplicates only")
    clean.add_argument("--eval-fraction", type=fraction, default=default("data.eval_fraction"))
    clean.add_argument("--seed", type=int, default=default("train.seed"))


def add_export_parsers(commands) -> None:
    from workbench.export.exporter import DEFAULT_QUANT, FORMATS
    from workbench.export.gguf import QUANTS
    from workbench.export.stack import METHODS

    export = commands.add_parser(
        "export", help="merge a run's adapter into its base and save it: a Hugging Face "
        "folder, a GGUF file, or a GGUF file with an Ollama Modelfile",
        description="Give several run folders with --weights to export their weighted "
        "combination. The chat template is checked on the way: an export whose template or "
        "stop token differs from training is refused.")
    export.add_argument("run_dir", nargs="+", metavar="RUN_DIR")
    export.add_argument("--format", choices=FORMATS, default=FORMATS[0],
                        help="hf: safetensors folder for transformers; gguf: one file for "
                        "llama.cpp; ollama: GGUF + Modelfile (default: hf)")
    export.add_argument("--quant", choices=QUANTS, default=DEFAULT_QUANT,
                        help=f"GGUF weight type (default: {DEFAULT_QUANT}); q5_k_m, q4_k_m "
                        "and q4_0 are made by llama.cpp's quantizer (the [verify] extra)")
    export.add_argument("-o", "--out", help="where to write (default: RUN_DIR/export/...)")
    export.add_argument("--weights", type=float, nargs="+", metavar="W",
                        help="one weight per run: export their weighted combination")
    export.add_argument("--method", default=METHODS[0], choices=METHODS,
                        help=f"how to combine several runs (default: {METHODS[0]})")
    export.add_argument("--density", type=float, help="share of each update kept by ties "
                        "and dare_* (0 to 1)")
    export.add_argument("--verify", action="store_true", help="load the GGUF file with "
                        "llama.cpp and check that it tokenizes, renders the chat template, "
                        "answers and stops as the merged model does (the [verify] extra)")
    export.add_argument("--force", action="store_true", help="keep the files even when the "
                        "chat template check or --verify fails")

    adapters = commands.add_parser("adapters", help="list the adapters in a runs folder: base "
                                   "model, rank, targets, dataset, final loss")
    adapters.add_argument("--runs-dir", default="runs")


def checked(parse, kind: str, ok, problem: str):
    """An argparse type: `parse` the text (else "is not {kind}"), then refuse a value `ok`
    rejects, saying `problem` (what is wrong and what to give)."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{value:g} is {problem}")
        return value

    return convert


positive_int = checked(int, "a whole number", lambda v: v >= 1, "too small; give 1 or more")
non_negative_int = checked(int, "a whole number", lambda v: v >= 0, "negative; give 0 or more")
seconds = checked(float, "a number of seconds", lambda v: v >= 0,
                  "negative; give 0 or more seconds")
fraction = checked(float, "a number", lambda v: 0 <= v <= 1, "outside 0..1")


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if rest and args.command != "lab":  # only `lab` passes options through (to jupyter lab)
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    args.passthrough = rest
    try:
        return COMMANDS[args.command](args) or 0
    except WorkbenchError as exc:
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        # one write: processes of one run that fail alike share a log, line by line
        sys.stderr.write(f"error: {exc}\n")
        sys.stderr.flush()
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
    from workbench.engine.distributed import Processes, expected_world_size
    from workbench.events import Control

    if args.resume and (args.config or args.set):
        print("error: --resume continues a run with its saved config; drop the config "
              "file and --set", file=sys.stderr)
        return 2
    if not args.resume and not args.config:
        print("error: give a config file (workbench validate --example > config.yaml)",
              file=sys.stderr)
        return 2
    config = train_config(args)
    if expected_world_size(config.distributed) > 1 and not Processes.from_environment().launched:
        return launch_and_follow(args, config)
    control = Control()
    install_stop_handlers(control)
    if args.resume:
        result = resume(args.resume, control=control, quiet=args.quiet, nproc=args.nproc)
    else:
        result = train(config, control=control, quiet=args.quiet, run_dir=args.run_dir)
    return 0 if result.status in ("finished", "stopped") else 1


def process_options(args) -> list[str]:
    """--nproc and --nnodes as config assignments."""
    return [f"distributed.{name}={value}" for name, value in
            (("nproc", args.nproc), ("nnodes", args.nnodes)) if value]


def train_config(args):
    from workbench.config import load_config
    from workbench.engine.rundir import RunDir

    if args.resume:
        return RunDir.open(args.resume).read_config().with_overrides(process_options(args))
    return load_config(args.config, args.set + process_options(args))


def launch_and_follow(args, config) -> int:
    """Start the run under accelerate launch and print its log until it ends."""
    from pathlib import Path

    from workbench.engine.launch import Nodes, launch_new_run, launch_resume

    nodes = Nodes(args.node_rank, args.main_address, args.main_port)
    settings = config.distributed
    if args.resume:
        launch = launch_resume(Path(args.resume), settings, args.nproc, nodes, args.quiet)
    else:
        given = [args.config] + [f"--set={item}" for item in args.set] + \
            [f"--{name}={value}" for name, value in (("nproc", args.nproc),
                                                    ("nnodes", args.nnodes)) if value]
        launch = launch_new_run(config, given, nodes, args.quiet)
    print(f"launching {settings.nproc * settings.nnodes} processes ({settings.strategy}) with "
          f"accelerate; their output: {launch.log}"
          + (f"\nrun folder: {launch.run_dir}" if launch.run_dir else ""), file=sys.stderr,
          flush=True)
    # Ctrl-C and SIGTERM ask the run to stop (a second ends it), even where this process
    # was started with SIGINT ignored (a background job of a non-interactive shell).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    code = launch.follow(print)
    return 0 if code == 0 else 1


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

    report = run_demo(runs_dir=args.runs_dir, max_steps=args.steps, profile=args.profile,
                      method=args.method)
    return 0 if report["status"] == "finished" else 1


def print_table(columns: list[tuple[str, str]], rows: list[tuple]) -> None:
    """A plain-text table: columns are (heading, format spec such as "<40" or ">8");
    a None cell prints as `-`, a float with four decimals."""
    def cell(value, spec: str) -> str:
        text = "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
        return f"{text:{spec}}"

    print(" ".join(cell(heading, spec) for heading, spec in columns).rstrip())
    for row in rows:
        print(" ".join(cell(value, spec) for value, (_, spec) in zip(row, columns)).rstrip())


def cmd_runs(args) -> int:
    from workbench.engine.rundir import list_runs

    rows = list_runs(args.runs_dir)
    if not rows:
        print(f"no runs in {args.runs_dir}/ yet; start one with `workbench demo`")
    else:
        print_table([("run", "<40"), ("status", "<18"), ("step", ">6"), ("loss", ">8"),
                     ("best eval", ">10")],
                    [(r["run"], "paused" if r["paused"] else r["status"], r["step"] or None,
                      r["final_loss"], r["best_eval_loss"]) for r in rows])
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


def cmd_data(args) -> int:
    return {"check": data_check, "report": data_report, "clean": data_clean}[args.data_command](args)


def data_check(args) -> int:
    from workbench.data import check

    result = check(args.path, args.format)
    if result.ok:
        print(result.summary())
        return 0
    shown = result.problems if args.limit <= 0 else result.problems[:args.limit]
    lines = [f"error: {len(result.problems)} problem(s) in {args.path}; training would refuse "
             "it:"] + [f"  {problem}" for problem in shown]
    if len(shown) < len(result.problems):
        lines.append(f"  ... and {len(result.problems) - len(shown)} more (--limit 0 lists all)")
    print("\n".join(lines), file=sys.stderr)
    return 2


def data_report(args) -> int:
    import dataclasses
    import json
    import time
    from pathlib import Path

    from workbench.data import check, report
    from workbench.engine.preview import tokenizer_for
    from workbench.plots.lengths import length_histogram_png

    from workbench.config import RunConfig, load_config

    # The run config's own data and model settings (its defaults without --config); flags win.
    config = load_config(args.config, [f"data.path={args.path}"]) if args.config else \
        RunConfig.from_dict({"data": {"path": args.path}})
    flags = {"format": args.format, "max_length": args.max_length, "train_on": args.train_on}
    data = dataclasses.replace(config.data, **{k: v for k, v in flags.items() if v is not None})
    model = args.model or config.model.name
    began = time.perf_counter()
    checked = check(args.path, data.format, data.system_prompt)
    if not checked.valid:  # before the tokenizer loads: that takes seconds
        checked.raise_if_problems()
    checking = time.perf_counter() - began
    tokenizer = tokenizer_for(model, config.model.trust_remote_code)
    result = report(checked, tokenizer, max_length=data.max_length, train_on=data.train_on,
                    near_threshold=args.near_threshold or None)
    png = Path(args.png or f"{Path(args.path).stem}-lengths.png")
    length_histogram_png(result, png)
    print(result.summary())
    print(f"  histogram: {png}  ({checking + result.seconds:.1f} s for "
          f"{len(result.examples)} examples, not counting the tokenizer's loading)")
    if args.json:
        Path(args.json).write_text(json.dumps(result.as_dict(), indent=2, ensure_ascii=False)
                                   + "\n", encoding="utf-8")
    return 0


def data_clean(args) -> int:
    from workbench.data import check, clean

    checked = check(args.path, args.format)
    if not checked.valid:  # nothing to keep: say why before loading a tokenizer
        checked.raise_if_problems()
    tokenizer = None
    if args.model:
        from workbench.engine.preview import tokenizer_for

        tokenizer = tokenizer_for(args.model)
    result = clean(checked, args.out, tokenizer=tokenizer,
                   min_tokens=args.min_tokens, max_tokens=args.max_tokens,
                   min_chars=args.min_chars, max_chars=args.max_chars,
                   near_threshold=None if args.keep_near else args.near_threshold,
                   eval_fraction=args.eval_fraction, seed=args.seed)
    print(result.summary())
    return 0


def cmd_export(args) -> int:
    from workbench.export.exporter import export_run

    result = export_run(args.run_dir, args.format, args.quant, args.out, weights=args.weights,
                        method=args.method, density=args.density, force=args.force,
                        verify=args.verify)
    for path in result.files:
        print(path)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    stages = ", ".join(s for s in result.check.stages if s != "training")
    if result.check.ok:
        print(f"chat template and stop token checked: training = {stages}")
    if result.verdict is not None:
        print(result.verdict.summary())
    if args.format == "ollama":
        print(f"next: ollama create NAME -f {result.out / 'Modelfile'}")
    return 0


def cmd_adapters(args) -> int:
    from workbench.export.library import list_adapters

    rows = list_adapters(args.runs_dir)
    if not rows:
        print(f"no adapters in {args.runs_dir}/ yet; train one with `workbench demo`")
    else:
        print_table([("adapter", "<36"), ("base model", "<28"), ("rank", ">4"), ("loss", ">8"),
                     (" targets / dataset", "")],
                    [(i.name, i.base_label[-28:], i.rank, i.final_loss,
                      f" {','.join(i.targets)} / {i.dataset or '-'}") for i in rows])
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


def cmd_eval(args) -> int:
    import json
    import time

    from workbench.engine.evaluation import compare_runs
    from workbench.engine.rundir import RunDir

    folder = RunDir.open(args.run_dir)  # a clear error before any model loads
    result = compare_runs(folder.path, args.against, args.scorer, args.data, args.limit,
                          args.checkpoint)
    print(result.table())
    out = folder.path / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result.as_dict(), indent=2, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    print(f"written: {out} ({result.seconds:.0f} s)")
    return 0


def cmd_rewards(args) -> int:
    from workbench.config import load_config
    from workbench.engine.reward_check import check_config

    config = load_config(args.config, args.set)
    report = check_config(config, args.prompts)
    print(report.summary(args.answers))
    problems = report.problems()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def cmd_request(args) -> int:
    from workbench.engine.steering import send_request, wait_for

    summary = send_request(args.run_dir, args.action)
    print(f"asked {args.run_dir} (pid {summary.get('pid')} on {summary.get('host')}) to "
          f"{args.action}; it does so after its current optimizer step")
    if args.wait > 0:
        done = wait_for(args.run_dir, args.action, summary, args.wait)
        print(done.message)
        return 0 if done.ok else 1
    return 0


def cmd_lab(args) -> int:
    from workbench.notebooks.lab import launch

    extra = (["--no-browser"] if args.no_browser else []) + \
        ([f"--port={args.port}"] if args.port else []) + args.passthrough
    launch(args.notebook, extra)  # replaces this process with JupyterLab
    return 0


def cmd_sweep(args) -> int:
    from workbench.notebooks.sweep import parse_grid, sweep

    fixed, swept = parse_grid(args.parameter)
    result = sweep(args.notebook, swept, fixed, jobs=args.jobs, timeout=args.timeout)
    print(result.markdown.read_text(encoding="utf-8"))
    return 1 if result.failed else 0


COMMANDS = {"validate": cmd_validate, "train": cmd_train, "demo": cmd_demo, "runs": cmd_runs,
            "generate": cmd_generate, "data": cmd_data, "export": cmd_export,
            "adapters": cmd_adapters, "notebook": cmd_notebook, "sweep": cmd_sweep,
            "lab": cmd_lab, "eval": cmd_eval, "rewards": cmd_rewards,
            **{action: cmd_request for action in REQUEST_HELP}}

if __name__ == "__main__":
    sys.exit(main())
