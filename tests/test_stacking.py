"""Sequential stacking (`lora.start_from`): a run that starts from an earlier adapter,
either training it further (`continue`) or on a base with it merged in (`merge`)."""

import json
import shutil

import pytest

from conftest import tiny_config
from workbench.engine.run import Run
from workbench.errors import ConfigError, ExportError
from workbench.events import RunStarted

IDS = [[1, 520, 33, 4067, 28, 905, 2, 1, 4093, 198, 26843, 216, 33, 34, 35, 2]]


def config_for(model_dir, data, runs_dir, name, steps=3, **sections):
    sections.setdefault("data", {})["eval_fraction"] = 0
    train = {"max_steps": steps, "save_every": 0, "learning_rate": 2e-2,
             **sections.pop("train", {})}
    return tiny_config(model_dir, data, runs_dir, output={"name": name}, train=train, **sections)


class LogitsAtStart:
    """A sink that reads the model's logits when training begins (before any step)."""

    def __init__(self):
        self.run, self.logits = None, None

    def __call__(self, event):
        import torch

        if isinstance(event, RunStarted):
            with torch.no_grad():
                self.logits = self.run.bundle.model(input_ids=torch.tensor(IDS)).logits.clone()


def run_with_start_logits(config):
    probe = LogitsAtStart()
    run = Run(config, sinks=[probe])
    probe.run = run
    return run, run.execute(), probe.logits


def model_logits(run_dir):
    import torch

    from workbench.api import TunedModel

    model = TunedModel(run_dir).bundle.model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS)).logits


@pytest.fixture(scope="module")
def earlier(tiny_model_dir, tmp_path_factory):
    """A finished run to stack on."""
    from conftest import ORDERS

    root = tmp_path_factory.mktemp("stacking")
    config = config_for(tiny_model_dir, ORDERS, root / "runs", "earlier")
    return Run(config).execute().run_dir


def test_continue_trains_the_earlier_adapter_from_where_it_stopped(
        earlier, tiny_model_dir, orders_subset, tmp_path):
    import torch

    config = config_for(tiny_model_dir, orders_subset, tmp_path, "more",
                        lora={"r": 4, "start_from": str(earlier)})  # r: the adapter's own wins
    run, result, start = run_with_start_logits(config)
    assert torch.allclose(start, model_logits(earlier), atol=1e-5)
    saved = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert saved["r"] == 8
    assert not torch.allclose(model_logits(result.run_dir), start, atol=1e-4)  # it trained on
    env = json.loads((result.run_dir / "environment.json").read_text())
    assert env["start_from"]["mode"] == "continue" and env["start_from"]["merged_into_base"] == []
    assert any("trains on with its own settings (r=8" in note for note in env["notes"])
    assert not (result.run_dir / "base_adapters").exists()


def test_merge_trains_a_new_adapter_on_the_merged_base_and_the_run_stands_alone(
        earlier, tiny_model_dir, orders_subset, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.api import TunedModel
    from workbench.export.exporter import export_run

    copy = shutil.copytree(earlier, tmp_path / "earlier-copy")  # deleted below
    config = config_for(tiny_model_dir, orders_subset, tmp_path / "runs", "on-top",
                        lora={"r": 4, "start_from": str(copy / "adapter"), "start_mode": "merge"})
    run, result, start = run_with_start_logits(config)
    # A fresh adapter starts as a no-op (B = 0): the model is the earlier one, merged in.
    assert torch.allclose(start, model_logits(earlier), atol=1e-5)
    with torch.no_grad():
        trained = run.bundle.model.eval()(input_ids=torch.tensor(IDS)).logits
    assert not torch.allclose(trained, start, atol=1e-4)
    saved = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert saved["r"] == 4
    (beneath,) = list((result.run_dir / "base_adapters").iterdir())
    assert beneath.name == "00-earlier-copy"
    assert sorted(p.name for p in beneath.iterdir()) == ["adapter_config.json",
                                                        "adapter_model.safetensors"]
    shutil.rmtree(copy)
    # Reloaded, generated from and exported without the earlier run: the copy is enough.
    assert torch.allclose(model_logits(result.run_dir), trained, atol=1e-5)
    tuned = TunedModel(result.run_dir)
    with torch.no_grad(), tuned.bundle.model.disable_adapter():
        base = tuned.bundle.model(input_ids=torch.tensor(IDS)).logits
    assert torch.allclose(base, start, atol=1e-5)  # "base" of this run is the earlier model
    exported = export_run(result.run_dir, "hf", out=tmp_path / "hf")
    merged = AutoModelForCausalLM.from_pretrained(exported.out).eval()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=torch.tensor(IDS)).logits, trained, atol=1e-5)
    # An adapter trained on top of another cannot be combined with one trained on the base.
    from workbench.export.library import adapter_info, check_compatible

    with pytest.raises(ExportError, match="different merged adapters"):
        check_compatible([adapter_info(result.run_dir), adapter_info(earlier)])


def test_a_stacked_run_resumes_from_its_own_checkpoint(earlier, tiny_model_dir, orders_subset,
                                                       tmp_path):
    from workbench.engine.rundir import RunDir
    from workbench.events import Control, StepLogged

    control = Control()
    config = config_for(tiny_model_dir, orders_subset, tmp_path, "resumed", steps=4,
                        lora={"start_from": str(earlier)}, train={"save_every": 2})
    stop = lambda e: control.stop() if isinstance(e, StepLogged) and e.step == 1 else None
    stopped = Run(config, sinks=[stop], control=control).execute()
    assert stopped.status == "stopped" and RunDir(stopped.run_dir).summary()["step"] == 2
    resumed = Run.resume(stopped.run_dir).execute()
    assert resumed.status == "finished" and RunDir(resumed.run_dir).summary()["step"] == 4


@pytest.mark.parametrize("start_from, mode, problem", [
    ("{tmp}/nowhere", "continue", "no run folder or adapter folder there"),
    ("{other}", "continue", "was trained on"),
    (None, "merge", "lora.start_mode is merge but lora.start_from is empty"),
])
def test_a_bad_start_is_refused_before_a_run_folder_exists(
        earlier, tiny_model_dir, orders_subset, tmp_path, start_from, mode, problem):
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)  # same weights, another base as far as names go
    lora = {"start_mode": mode}
    if start_from:
        lora["start_from"] = start_from.format(tmp=tmp_path, other=earlier)
    with pytest.raises(ConfigError, match=problem) as refused:
        config = config_for(str(other), orders_subset, tmp_path / "runs", "bad", lora=lora)
        Run(config).execute()
    if start_from == "{other}":
        assert tiny_model_dir in str(refused.value) and str(other) in str(refused.value)
    assert not (tmp_path / "runs").exists()


def test_a_stacked_run_loads_with_the_same_logits_through_every_caller(
        earlier, tiny_model_dir, orders_subset, tmp_path):
    """load_run is the one way in: TunedModel, the adapter stack, merge/export and the
    dashboard's chat all see the merged-beneath base plus the run's own adapter."""
    import torch

    from workbench import Dashboard, TunedModel, load_run
    from workbench.export.merge import merged_run
    from workbench.export.stack import AdapterStack

    config = config_for(tiny_model_dir, orders_subset, tmp_path / "runs", "stacked",
                        lora={"start_from": str(earlier), "start_mode": "merge"})
    run, result, _ = run_with_start_logits(config)
    ids = torch.tensor(IDS)
    with torch.no_grad():
        trained = run.bundle.model.eval()(input_ids=ids).logits

    def logits(model):
        with torch.no_grad():
            return model.eval()(input_ids=ids).logits

    loaded = load_run(result.run_dir)
    assert loaded.chat and loaded.trained_with == "hf" and loaded.run_dir == result.run_dir
    stack = AdapterStack([result.run_dir])
    dash = Dashboard(interactive=False)
    try:
        opened = dash.open_run(result.run_dir)
        callers = {"load_run": loaded.model, "TunedModel": TunedModel(result.run_dir).model,
                   "Dashboard.open_run": opened.model, "AdapterStack": stack.model,
                   "merged_run": merged_run(result.run_dir)[0]}
        for name, model in callers.items():
            assert torch.allclose(logits(model), trained, atol=1e-5), name
        prompt = "Two lattes to Lyon, please"
        expected = loaded.generate([prompt])[0]  # the run's sample settings: greedy
        assert dash.chat(prompt, model="tuned")["tuned"] == expected  # the chat answers with it
        tokens = loaded.config.sample.max_new_tokens
        assert stack.generate([prompt], stack.labels[0], max_new_tokens=tokens) == [expected]
    finally:
        dash.close()
