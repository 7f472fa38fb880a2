"""The `generate:` section of a run config: which recipe, which LLM backend, how sharded."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveInt

from raysynth.config_base import Strict, WindowMinutes, resolve_path
from raysynth.errors import ConfigError
from raysynth.generate.recipe import Recipe, check_recipe, load_recipe
from raysynth.llm.config import Backend, LocalBackend


class GenerateConfig(Strict):
    """Synthetic note generation: a recipe expanded into prompt shards, sent through the LLM
    layer, post-processed into note shards."""

    recipe: Recipe | None = Field(default=None, description="The recipe, inline.")
    recipe_file: Path | None = Field(
        default=None,
        description="Or: a recipe YAML file (relative to the config file's folder).",
    )
    num_notes: PositiveInt | None = Field(
        default=None,
        description="Overrides the recipe's num_notes (e.g. a small laptop run of a big "
        "recipe); note_ids of the first notes stay the same.",
    )
    backend: Backend = Field(
        default_factory=LocalBackend,
        description="LLM backend: local (llama.cpp on 127.0.0.1), openai or vllm.",
    )
    shard_rows: PositiveInt = Field(
        default=100, description="Prompts (and notes) per Parquet shard: the unit of resume."
    )
    window_minutes: WindowMinutes = 30
    cache: bool = Field(
        default=True, description="Cache responses under <run>/llm-cache (HTTP backends)."
    )

    def resolved(self, base: Path) -> GenerateConfig:
        """Recipe file loaded, lexicon paths resolved, and every lexicon checked: a bad
        recipe fails here, at load time, before any work."""
        if (self.recipe is None) == (self.recipe_file is None):
            raise ConfigError("generate: give exactly one of recipe and recipe_file")
        if self.recipe_file is not None:
            recipe = load_recipe(resolve_path(base, self.recipe_file))
        else:
            recipe = self.recipe.resolved(base)
        if self.num_notes is not None:
            recipe = recipe.model_copy(update={"num_notes": self.num_notes})
        check_recipe(recipe)
        return self.model_copy(update={"recipe": recipe, "recipe_file": None})

    def check_backend(self) -> None:
        """A base model takes completion prompts only. Checked when the stage starts, not at
        load: an experiment grid patches the recipe (its prompt_style) after loading it."""
        backend, recipe = self.backend, self.recipe
        if isinstance(backend, LocalBackend) and not backend.chat and recipe.prompt_style == "chat":
            raise ConfigError(
                f"generate.backend.bundled: {backend.bundled} is a base model (completion "
                "prompts only); set the recipe's prompt_style: completion"
            )
