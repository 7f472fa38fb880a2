"""The LLM access layer (DESIGN.md, "LLM access"): typed backend configs and one stage that
turns a Ray Dataset of requests into a Ray Dataset of responses, whatever the backend.

    from raysynth.llm import LocalBackend, SamplingParams, llm_stage, summarize

    with llm_stage(LocalBackend(), sampling=SamplingParams(max_tokens=64),
                   cache_dir=run_dir / "llm-cache", run_dir=run_dir) as stage:
        stage(requests).write_parquet(out)
    print(summarize(ray.data.read_parquet(out)).to_dict())
"""

from raysynth.llm.builder import Stage, llm_stage
from raysynth.llm.config import (
    Backend,
    LocalBackend,
    OpenAIBackend,
    SamplingParams,
    VllmBackend,
)
from raysynth.llm.results import RESULT_COLUMNS, StageSummary, summarize

__all__ = [
    "RESULT_COLUMNS",
    "Backend",
    "LocalBackend",
    "OpenAIBackend",
    "SamplingParams",
    "Stage",
    "StageSummary",
    "VllmBackend",
    "llm_stage",
    "summarize",
]
