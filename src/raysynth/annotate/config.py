"""The `annotate:` section of a run config: which labels, which prompt strategies, which LLM,
and how the LLM's mentions are merged with the seeds and the dictionary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from raysynth.config_base import CorpusRef, Strict, WindowMinutes, resolve_path
from raysynth.errors import ConfigError
from raysynth.generate.recipe import LexiconFile, LexiconFilters, TermSampling
from raysynth.llm.config import Backend, LocalBackend, OpenAIBackend, VllmBackend
from raysynth.llm.http import LOOPBACK_HOSTS

Source = Literal["seed", "llm", "kb"]


class Strategy(Strict):
    """One way of asking the LLM for entities (the papers' prompt forms)."""

    name: str | None = Field(
        default=None, description="Name in reports; default e.g. `json-knn-kb`."
    )
    format: Literal["json", "inline", "tokens"] = Field(
        default="json",
        description="`json`: each type's mentions copied verbatim (Šuvalov et al.); `inline`: "
        "the text returned with <type>...</type> tags; `tokens`: one `token : BIO-label` "
        "line per token (Lu et al.).",
    )
    shots: Literal["zero", "fixed", "knn"] = Field(
        default="zero",
        description="In-context examples: none, the same k for every note, or the k most "
        "similar by sentence embedding, most similar last (Monajatipoor et al.).",
    )
    k: PositiveInt = Field(default=3, description="Examples per prompt (fixed / knn).")
    kb_in_prompt: bool = Field(
        default=False,
        description="Dictionary-infused prompting: the strings of the note found in the "
        "`kb` lexicons are listed in the prompt with their type.",
    )
    structured: bool = Field(
        default=True,
        description="`json` format: ask for output constrained by a JSON Schema where the "
        "backend supports it; the plain-text parser reads the answer either way.",
    )
    samples: PositiveInt = Field(
        default=1,
        description="Answers drawn per note; several are merged by vote (self-consistency).",
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature; default 0 for one sample, 0.7 for several.",
    )
    max_tokens: PositiveInt = Field(default=384, description="Longest answer, in tokens.")

    @property
    def label(self) -> str:
        kb = "-kb" if self.kb_in_prompt else ""
        votes = f"-x{self.samples}" if self.samples > 1 else ""
        return self.name or f"{self.format}-{self.shots}{kb}{votes}"

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.samples == 1 else 0.7


class KnowledgeBase(Strict):
    """Lexicons per label: spans found in a note are `kb` labels, and (kb_in_prompt) hints."""

    lexicons: dict[str, list[LexiconFile]] = Field(
        description="Label -> lexicon files (same file forms as a recipe's entity types)."
    )
    filters: LexiconFilters = Field(
        default_factory=LexiconFilters, description="Which dictionary entries are used."
    )


class MergeConfig(Strict):
    """How a note's labels are assembled from its sources."""

    sources: list[Source] = Field(
        default=["seed", "llm", "kb"],
        min_length=1,
        description="Sources whose spans make the note's labels.",
    )
    min_votes: PositiveInt | None = Field(
        default=None,
        description="LLM answers (strategies x samples) that must return a span for it to "
        "count; default a strict majority.",
    )
    overlap: Literal["longest", "first"] = Field(
        default="longest", description="Which of two overlapping spans is kept."
    )
    # Left out of dumps while false, so annotations made before it existed keep their digest.
    abbreviations: bool = Field(
        default=False,
        exclude_if=lambda on: not on,
        description="Label an abbreviation the note defines after a labelled long form, "
        "'Huntington disease (HD)', wherever it occurs in the note (source `abbreviation`; "
        "the pairs the evaluation's abbreviation step finds, but labels are only added). "
        "Without it a model learns that such short "
        "forms are not entities; notes from base models define many.",
    )


Share = Annotated[float, Field(ge=0.0, le=1.0)]
REPLACEMENT_FORMS = (
    "define_abbreviation",
    "abbreviation_only",
    "modifier",
    "coordinate",
    "deficiency",
)
QUALIFIERS = ("hereditary", "familial", "inherited", "sporadic", "congenital", "primary",
              "early-onset", "autosomal dominant", "autosomal recessive", "X-linked")  # fmt: skip


class AugmentConfig(TermSampling):
    """Mention replacement (raysynth.annotate.augment): copies of each ok note with every
    labelled mention replaced by a lexicon term of its label, some as abbreviations."""

    copies: NonNegativeInt = Field(
        default=2, description="Copies written per ok note, after the note itself."
    )
    lexicons: dict[str, list[LexiconFile]] | None = Field(
        default=None,
        description="Label -> lexicon files the replacements are drawn from; default the "
        "`kb` lexicons. Every label of a copied note needs one.",
    )
    # Each replacement takes one form, drawn with these fractions (the rest: the term as is).
    define_abbreviation: Share = Field(
        default=0.15, description="Fraction of replacements written `term (ABBR)`, both labelled."
    )
    abbreviation_only: Share = Field(
        default=0.1, description="Fraction of replacements written as the abbreviation alone."
    )
    # The next three follow the target corpus's guideline, hence off by default: NCBI-disease
    # labels 'hereditary breast cancer' and 'breast and ovarian cancer' whole, and a model
    # trained on bare lexicon terms learns to stop at 'breast cancer' (most of its boundary
    # errors on NCBI-disease dev, docs/RESULTS.md). It also labels a gene product's
    # deficiency ('C9 deficiency'), which no lexicon lists for every product.
    modifier: Share = Field(
        default=0.0,
        description="Fraction of replacements written behind a qualifier of `modifiers`, "
        "labelled with it ('hereditary breast cancer').",
    )
    modifiers: list[str] = Field(
        default_factory=lambda: list(QUALIFIERS),
        description="The qualifiers `modifier` draws from.",
    )
    coordinate: Share = Field(
        default=0.0,
        description="Fraction of replacements written as two terms of the same last word "
        "coordinated, one mention ('breast and ovarian cancer').",
    )
    # `deficiency` and `products` are left out of dumps while unset, so that the digests of
    # annotations made before they existed stay the same.
    deficiency: Share = Field(
        default=0.0,
        exclude_if=lambda share: not share,
        description="Fraction of replacements written as the deficiency of a gene product "
        "of `products`, labelled whole ('G6PD deficiency', 'deficiency of galactokinase').",
    )
    products: list[LexiconFile] = Field(
        default_factory=list,
        exclude_if=lambda files: not files,
        description="Lexicon files of gene products (enzymes, proteins, their symbols) "
        "`deficiency` draws from; plural class names ('Kinases') are skipped.",
    )

    @model_validator(mode="after")
    def _fractions(self) -> AugmentConfig:
        if sum(getattr(self, name) for name in REPLACEMENT_FORMS) > 1:
            raise ValueError(f"{' + '.join(REPLACEMENT_FORMS)}: more than 1")
        if self.modifier and not self.modifiers:
            raise ValueError("modifier: needs at least one of `modifiers`")
        if self.deficiency and not self.products:
            raise ValueError("deficiency: needs at least one lexicon file in `products`")
        return self


class AnnotateConfig(Strict):
    """LLM annotation of notes (or of a real corpus, for the annotator baseline)."""

    labels: dict[str, str] = Field(
        min_length=1,
        description="Entity types and the one-line description the prompt gives each, e.g. "
        "{Disease: 'a disease, disorder or syndrome, or its abbreviation'}.",
    )
    input: CorpusRef | None = Field(
        default=None,
        description="What to annotate; default the run's generated notes. Any other corpus "
        "is treated as real text (see allow_real_text).",
    )
    backend: Backend = Field(
        default_factory=LocalBackend, description="LLM backend: local, openai or vllm."
    )
    strategies: list[Strategy] = Field(
        default_factory=lambda: [Strategy()],
        min_length=1,
        description="Prompt strategies; with several, each note gets every strategy's "
        "answers and they are merged by vote like samples.",
    )
    examples: CorpusRef | None = Field(
        default=None,
        description="Labeled pool for few-shot examples (fixed / knn strategies).",
    )
    examples_limit: PositiveInt = Field(
        default=2000, description="Examples read from the pool (a seeded random subset)."
    )
    kb: KnowledgeBase | None = Field(default=None, description="Dictionary of each label.")
    merge: MergeConfig = Field(default_factory=MergeConfig, description="Label merging.")
    augment: AugmentConfig | None = Field(
        default=None,
        description="Mention replacement: extra training notes made from the ok ones "
        "(`{}` for the defaults).",
    )
    occurrences: Literal["all", "first"] = Field(
        default="all",
        description="A mention the LLM returns labels every occurrence in the note, or the "
        "first only.",
    )
    allow_real_text: bool = Field(
        default=False,
        description="Send real (non-synthetic) text to an endpoint that is not on this "
        "machine or cluster. Off: such a run is refused before any request.",
    )
    shard_rows: PositiveInt = Field(
        default=100, description="Notes per output shard when the input is not sharded."
    )
    window_minutes: WindowMinutes = 30
    cache: bool = Field(
        default=True, description="Cache responses under <run>/llm-cache (HTTP backends)."
    )
    seed: int = Field(default=0, description="Seed of example sampling.")

    @model_validator(mode="after")
    def _consistent(self) -> AnnotateConfig:
        for i, strategy in enumerate(self.strategies):
            where = f"strategies.{i}"
            if strategy.shots != "zero" and self.examples is None:
                raise ValueError(f"{where}.shots: {strategy.shots} needs `examples`")
            if strategy.kb_in_prompt and self.kb is None:
                raise ValueError(f"{where}.kb_in_prompt: needs a `kb` section")
        names = [s.label for s in self.strategies]
        if len(set(names)) != len(names):
            raise ValueError("strategies: two strategies have the same name; set `name`")
        if self.kb is not None:
            unknown = sorted(set(self.kb.lexicons) - set(self.labels))
            if unknown:
                raise ValueError(f"kb.lexicons: labels not in `labels`: {', '.join(unknown)}")
        if self.augment is not None and self.augment.lexicons is None and self.kb is None:
            raise ValueError("augment: needs `augment.lexicons` or a `kb` section")
        asks = "llm" in self.merge.sources
        if asks and isinstance(self.backend, LocalBackend) and not self.backend.chat:
            raise ValueError(
                f"backend.bundled: {self.backend.bundled} is a base model (completion prompts "
                "only) and the annotator sends chat prompts; use smollm2-135m-instruct"
            )
        return self

    def resolved(self, base: Path) -> AnnotateConfig:
        """Corpus and lexicon paths resolved against the config file's folder."""

        def corpus(ref: CorpusRef | None) -> CorpusRef | None:
            return ref and ref.model_copy(update={"path": resolve_path(base, ref.path)})

        def files(group: list[LexiconFile]) -> list[LexiconFile]:
            return [f.model_copy(update={"path": resolve_path(base, f.path)}) for f in group]

        def lexicons(by_label: dict[str, list[LexiconFile]]) -> dict[str, list[LexiconFile]]:
            return {label: files(group) for label, group in by_label.items()}

        kb, augment = self.kb, self.augment
        if kb is not None:
            kb = kb.model_copy(update={"lexicons": lexicons(kb.lexicons)})
        if augment is not None:
            paths = {"products": files(augment.products)}
            if augment.lexicons is not None:
                paths["lexicons"] = lexicons(augment.lexicons)
            augment = augment.model_copy(update=paths)
        update = {"input": corpus(self.input), "examples": corpus(self.examples), "kb": kb,
                  "augment": augment}  # fmt: skip
        return self.model_copy(update=update)


def is_local(backend: Backend) -> bool:
    """Whether text sent to `backend` stays on this machine or cluster: a llama.cpp server
    raysynth starts, vLLM engines inside the Ray job, or an endpoint on loopback."""
    if isinstance(backend, (LocalBackend, VllmBackend)):
        return True
    assert isinstance(backend, OpenAIBackend)
    return urlparse(backend.base_url).hostname in LOOPBACK_HOSTS


def check_privacy(config: AnnotateConfig, real_text: bool, what: str) -> None:
    """Refuse, before any request, to send real text to a non-local endpoint unless the
    config says so: hospital notes must not leave the building by accident."""
    if real_text and not is_local(config.backend) and not config.allow_real_text:
        raise ConfigError(
            f"annotate: {what} is real text and backend {config.backend.kind} at "
            f"{getattr(config.backend, 'base_url', '?')} is not local; refusing to send it. "
            "Use a local backend, or set annotate.allow_real_text: true if this endpoint is "
            "allowed to see the data."
        )
