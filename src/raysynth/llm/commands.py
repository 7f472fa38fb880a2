"""CLI commands of the LLM layer: `raysynth llm serve` and `raysynth models export-hf`.

`register` adds them to the `raysynth` parser; handlers import what they need when they run,
so `raysynth --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from raysynth.llm.config import BundledModel


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `llm` and `models` command groups to `commands` (cli.py's subparsers)."""
    llm = commands.add_parser("llm", help="LLM back-ends", description="LLM back-ends.")
    llm_commands = llm.add_subparsers(dest="llm_command", required=True, metavar="COMMAND")
    serve = llm_commands.add_parser(
        "serve",
        help="run the local llama.cpp server in the foreground",
        description="Serve a GGUF model (default: the bundled SmolLM2-135M-Instruct) as an "
        "OpenAI-compatible endpoint on 127.0.0.1 until Ctrl-C.",
    )
    serve.add_argument("--gguf", type=Path, help="GGUF model file (default: --bundled)")
    serve.add_argument(
        "--bundled",
        choices=get_args(BundledModel),
        default="smollm2-135m-instruct",
        help="bundled model to serve without --gguf (default: smollm2-135m-instruct; "
        "gemma3-270m is a base model: /v1/completions only)",
    )
    serve.add_argument("--port", type=int, help="port (default: a free one)")
    serve.add_argument(
        "--threads", type=int, help="threads per generated token (default: half the CPUs)"
    )
    serve.add_argument("--n-ctx", type=int, default=2048, help="context length (default: 2048)")
    serve.add_argument(
        "--run-dir", type=Path, default=Path("runs/llm-serve"), help="where the log goes"
    )
    serve.set_defaults(handler=_serve)

    models = commands.add_parser("models", help="model files", description="Model files.")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    export = model_commands.add_parser(
        "export-hf",
        help="write a GGUF model as a Hugging Face folder (for vLLM)",
        description="Dequantize a GGUF model into a Hugging Face folder that vLLM and "
        "transformers load (default: the bundled SmolLM2-135M-Instruct).",
    )
    export.add_argument("output", type=Path, help="folder to write")
    export.add_argument("--gguf", type=Path, help="GGUF model file (default: bundled SmolLM2)")
    export.set_defaults(handler=_export_hf)


def _serve(args: argparse.Namespace) -> int:
    from raysynth.llm.config import LocalBackend
    from raysynth.llm.local_server import local_server

    config = LocalBackend(
        gguf=args.gguf,
        bundled=args.bundled,
        port=args.port,
        threads=args.threads,
        n_ctx=args.n_ctx,
    )
    try:  # Ctrl-C or SIGTERM (raysynth.cli.main)
        with local_server(config, args.run_dir) as server:
            print(f"serving {config.model_alias} at {server.base_url} (log: {server.log_path})")
            print("Ctrl-C stops it.", flush=True)
            code = server.process.wait()
    except KeyboardInterrupt:
        print("stopped.")
        return 0
    print(f"the server exited with code {code}; see {server.log_path}")
    return 1


def _export_hf(args: argparse.Namespace) -> int:
    from raysynth.llm.export_hf import bundled_gguf, export_hf

    gguf = args.gguf or bundled_gguf()
    out = export_hf(gguf, args.output)
    print(f"exported {gguf} -> {out}")
    return 0
