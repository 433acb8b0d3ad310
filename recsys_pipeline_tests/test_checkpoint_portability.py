"""A saved model folder carries its code: it loads with trust_remote_code=True where the package
is absent, and with the package's registered classes (asking nothing) where it is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.dynamic_module_utils import get_imports
from transformers.utils import logging as hf_logging

from recsys_pipeline.models.checkpoints import load_checkpoint
from recsys_pipeline.models.configuration_sasrec import VARIANTS, SASRecConfig
from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
from recsys_pipeline_tests.conftest import REPO
from recsys_pipeline_tests.test_models import random_ids, tiny_model

CODE_FILES = ["configuration_sasrec.py", "fused_loss.py", "modeling_sasrec.py"]
# Set first in every clean interpreter: the package is installed (editable) in this environment,
# and None in sys.modules makes `import recsys_pipeline` fail as if it were not.
WITHOUT_PACKAGE = """import sys
sys.modules["recsys_pipeline"] = None
try:
    import recsys_pipeline
except ImportError:
    pass
else:
    raise SystemExit("recsys_pipeline is importable")
"""


def run_without_package(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh isolated interpreter (no PYTHON* variables, no user site, nothing of
    the working directory on sys.path) run from an empty folder, offline, with its own module
    cache and no stdin (a question would fail at once), where recsys_pipeline cannot be
    imported."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
    }
    return subprocess.run(
        [sys.executable, "-I", "-c", WITHOUT_PACKAGE + code],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_folder_carries_code_that_needs_only_torch_and_transformers(tmp_path):
    tiny_model("sasrec").save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.py")) == CODE_FILES
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"] == {
        "AutoConfig": "configuration_sasrec.SASRecConfig",
        "AutoModelForCausalLM": "modeling_sasrec.SASRecForCausalLM",
    }
    for name in CODE_FILES:
        assert (tmp_path / name).read_text() == (REPO / "recsys_pipeline/models" / name).read_text()
        libraries = set(get_imports(tmp_path / name)) - sys.stdlib_module_names
        assert libraries <= {"torch", "transformers"}, (name, libraries)


def test_every_variant_loads_with_trust_remote_code_where_the_package_is_absent(tmp_path):
    ids = random_ids(3, 9)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding
    expected = {}
    for variant in VARIANTS:
        model = tiny_model(variant)
        model.save_pretrained(tmp_path / variant)
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, labels=ids)
        expected[variant] = (out.logits, out.loss, out.aux_loss)
    torch.save({"ids": ids, "mask": mask}, tmp_path / "inputs.pt")
    code = f"""
import torch
from transformers import AutoModelForCausalLM

inputs = torch.load({str(tmp_path / "inputs.pt")!r})
results = {{}}
for variant in {list(VARIANTS)!r}:
    model = AutoModelForCausalLM.from_pretrained(
        {str(tmp_path)!r} + "/" + variant, trust_remote_code=True
    ).eval()
    with torch.no_grad():
        out = model(input_ids=inputs["ids"], attention_mask=inputs["mask"], labels=inputs["ids"])
    results[variant] = (out.logits, out.loss, out.aux_loss, type(model).__module__)
torch.save(results, {str(tmp_path / "results.pt")!r})
print([name for name, mod in sys.modules.items() if name.startswith("recsys_pipeline") and mod])
"""
    done = run_without_package(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["[]"]  # nothing of the package was imported
    results = torch.load(tmp_path / "results.pt")
    for variant in VARIANTS:
        logits, loss, aux_loss, module = results[variant]
        # each folder runs its own copy of the code, not the first folder's
        assert module.startswith(f"transformers_modules.{variant}.")
        assert module.endswith(".modeling_sasrec")
        assert torch.equal(logits, expected[variant][0]), variant
        assert torch.equal(loss, expected[variant][1]), variant
        if variant == "sasrec_moe":
            assert torch.equal(aux_loss, expected[variant][2])
        else:
            assert aux_loss is None and expected[variant][2] is None


# Left out, transformers asks on a terminal (for 15 s); with no stdin it refuses at once.
@pytest.mark.parametrize("trust", ["", ", trust_remote_code=False"])
def test_without_the_package_and_without_trust_remote_code_transformers_refuses(tmp_path, trust):
    tiny_model("sasrec").save_pretrained(tmp_path / "model")
    code = f"""
from transformers import AutoModelForCausalLM

AutoModelForCausalLM.from_pretrained({str(tmp_path / "model")!r}{trust})
"""
    done = run_without_package(code, tmp_path)
    assert done.returncode == 1
    assert "ValueError: The repository" in done.stderr
    assert "contains custom code which must be executed" in done.stderr
    assert "Please pass the argument `trust_remote_code=True`" in done.stderr
    # transformers' own refusal: no frame of the folder's code (or any of ours) ever ran
    frames = [line for line in done.stderr.splitlines() if line.startswith('  File "')]
    library = f'  File "{Path(transformers.__file__).parent}/'
    assert frames and all(frame.startswith(('  File "<string>"', library)) for frame in frames), (
        frames
    )


@pytest.mark.parametrize("trust_remote_code", [None, False, True])
def test_with_the_package_its_registered_classes_load_the_folder_and_nothing_is_asked(
    tmp_path, capfd, trust_remote_code
):
    # The folder has an auto_map; transformers still prefers the registered classes. A question
    # would fail here (pytest's stdin cannot be read), and a warning would show in stderr.
    tiny_model("sasrec_moe").save_pretrained(tmp_path)
    capfd.readouterr()
    kwargs = {} if trust_remote_code is None else {"trust_remote_code": trust_remote_code}
    model = AutoModelForCausalLM.from_pretrained(tmp_path, **kwargs)
    config = AutoConfig.from_pretrained(tmp_path, **kwargs)
    assert type(model) is SASRecForCausalLM and type(model.config) is SASRecConfig
    assert type(config) is SASRecConfig
    assert type(AutoModelForCausalLM.from_config(config)) is SASRecForCausalLM
    assert type(load_checkpoint(tmp_path)) is SASRecForCausalLM
    err = capfd.readouterr().err
    assert "custom code" not in err and "trust_remote_code" not in err, err


def test_loading_a_checkpoint_leaves_the_progress_bar_setting_as_it_was(tmp_path, capfd):
    tiny_model("sasrec").save_pretrained(tmp_path)
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()

    def someone_elses_hook(factory, args, kwargs):
        return factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(someone_elses_hook)
    try:
        capfd.readouterr()
        load_checkpoint(tmp_path)
        assert "Loading weights" not in capfd.readouterr().err  # quiet during the load
        assert hf_logging.is_progress_bar_enabled()  # and the switch is as it was
        AutoModelForCausalLM.from_pretrained(tmp_path)
        assert "Loading weights" in capfd.readouterr().err  # so others' loads still show it
    finally:
        assert hf_logging.set_tqdm_hook(previous) is someone_elses_hook
        if not was_enabled:
            hf_logging.disable_progress_bar()
