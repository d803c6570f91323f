"""The engine from the command line, printing the same JSON as the API; or the app on any set of models.

    python -m app.serve.cli compare "The protein binds to" --domain biomed
    python -m app.serve.cli generate "The licence grants" --domain law --max-new-tokens 20
    python -m app.serve.cli score "Gross domestic product fell." --domain finance   # each mixture at its tuned weight
    python -m app.serve.cli score "Gross domestic product fell." --domain finance --alpha 0.6 --lock-alpha
    python -m app.serve.cli memories --base small                                # what each memory knows, its defaults
    python -m app.serve.cli which-memory "The licence grants the" --csv survey.csv  # every memory on one passage
    python -m app.serve.cli batch --file prompts.txt --top-n 5 [--csv batch.csv]   # prompts x memories, top tokens
    python -m app.serve.cli compare "The history of the" --preset gpt2-wikitext --base gpt2-medium
    python -m app.serve.cli serve --presets gpt2-wikitext,qwen2.5-law --device cuda
    python -m app.serve.cli serve --model gpt2=openai-community/gpt2 \\
        --memory wiki=Clover-Hill/MemoryDecoder-gpt2-small,wiki.txt.gz
    python -m app.serve.cli memory build notes.txt --name notes [--base small]   # your text: a live kNN-LM at once
    python -m app.serve.cli memory distil notes                                   # ... and its Memory Decoder
    python -m app.serve.cli compare "The protein binds to" --domain notes+memdec
    python -m app.serve.cli deploy --space alice/memory-decoder --preset gpt2-wikitext --dry-run   # a Space

The models are a preset (--preset, or MEMDEC_PRESET; default: the embedded family), several presets that the page
switches among (--presets a,b), or your own (--model NAME=PATH_OR_HUB_ID and --memory NAME=DECODER[,CORPUS]).
"""
import argparse
import json
import os
import sys

from . import batch, deploy, endpoints, generate, memories, presets, which_memory
from .engine import CORPUS_TOKENS, DEFAULTS, Engine, InputError, Memory
from .tables import to_csv


def engine_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Which models, where and how: shared by `python app.py` and this command; each has a variable for Spaces."""
    env = os.environ.get

    def switch(name: str) -> bool:
        """An on/off variable: 1, true, yes or on (any case) turn it on; unset, empty, 0, false, no or off leave it
        off."""
        value = env(name, "").strip().lower()
        if value in ("", "0", "false", "no", "off"):
            return False
        if value in ("1", "true", "yes", "on"):
            return True
        parser.error(f"{name}={env(name)!r}: use 1 or 0 (true/false, yes/no, on/off)")

    parser.add_argument("--preset", default=env("MEMDEC_PRESET"),
                        help=f"one of {', '.join([*presets.LOCAL, *presets.PRESETS])} (default: MEMDEC_PRESET, else "
                             "smollm2 and embedded when SmolLM2's base is cached or can be fetched, else embedded)")
    parser.add_argument("--presets", default=env("MEMDEC_PRESETS"), help="several presets the page switches among, a,b")
    parser.add_argument("--model", action="append", default=[], help="your own base NAME=FOLDER_OR_HUB_ID (repeat)")
    parser.add_argument("--memory", action="append", default=[], help="your own memory NAME=DECODER[,CORPUS] (repeat)")
    parser.add_argument("--device", default=env("MEMDEC_DEVICE"),
                        help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    parser.add_argument("--dtype", default=env("MEMDEC_DTYPE"), choices=["bf16", "fp16", "fp32"],
                        help="weights' precision (default: bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--corpus-tokens", type=int, default=env("MEMDEC_CORPUS_TOKENS"),
                        help=f"how much of a hub corpus the live kNN-LM searches (default {CORPUS_TOKENS})")
    parser.add_argument("--preload", action="store_true", default=switch("MEMDEC_PRELOAD"),
                        help="load the models and build the datastores before serving (MEMDEC_PRELOAD=1); without it "
                             "they are built in the background while the app serves")
    parser.add_argument("--public", action="store_true", default=switch("MEMDEC_PUBLIC"),
                        help="serve a public Space: only the presets can be loaded, and no visitor can name a file or "
                             "model on this server (MEMDEC_PUBLIC=1)")
    parser.add_argument("--share-memories", action="store_true", default=switch("MEMDEC_SHARE_MEMORIES"),
                        help="memories that visitors upload are listed to every visitor, not only to their maker "
                             "(MEMDEC_SHARE_MEMORIES=1)")
    return parser


def engine_from(args, one_family: bool = False) -> Engine:
    """one_family: with no preset named, serve only the default family (a command line answers about one family,
    whose names need no "family/" in front), not the others the page offers in its menu."""
    options = dict(device=args.device, dtype=args.dtype, corpus_tokens=args.corpus_tokens,
                   share_memories=args.share_memories)
    if args.public and (args.model or args.memory):
        raise InputError("a public server serves presets only (--preset or --presets): leave out --model and --memory, "
                         "or add the models as a preset in app/serve/presets.py")
    if not args.model and not args.memory:
        names = args.presets.split(",") if args.presets else [args.preset] if args.preset else presets.default_presets()
        names = names[:1] if one_family and not args.presets else names
        engine = Engine.from_presets(names, **options)
        engine.public = args.public
        return engine
    if not args.model or not args.memory:
        raise InputError("your own models need at least one --model NAME=PATH and one --memory NAME=DECODER[,CORPUS]")
    bases = dict(item.split("=", 1) for item in args.model)
    memories = {}
    for item in args.memory:
        name, spec = item.split("=", 1)
        decoder, _, corpus = spec.partition(",")
        memories[name] = Memory.from_folder(decoder, corpus or None)
    return Engine(bases, memories, **options)


def main():
    try:
        run()
    except InputError as error:
        raise SystemExit(f"error: {error}")


def run():
    if sys.argv[1:2] == ["memory"]:
        return memory_command(sys.argv[2:])
    if sys.argv[1:2] == ["deploy"]:
        return deploy_command(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["compare", "generate", "score", "memories", "serve", "prepare", "memory",
                                            "deploy", "which-memory", "batch"],
                        help="memories: what each memory knows and its defaults for --base; prepare: load the default "
                             "base and every memory and build their datastores; memory: your own text as a memory "
                             "(python -m app.serve.cli memory --help); deploy: this repository as a Hugging Face Space "
                             "(python -m app.serve.cli deploy --help)")
    parser.add_argument("text", nargs="?", default="")
    parser.add_argument("--base", help="which base to use (default: the first)")
    parser.add_argument("--domain", help="which memory to use (default: the first)")
    parser.add_argument("--alpha", type=float, help="weight of the Memory Decoder (default: tuned for the base)")
    parser.add_argument("--knn-lambda", type=float, help="weight of the kNN-LM (default: tuned for the base)")
    parser.add_argument("--lock-alpha", action="store_true", help="mix both at --alpha (for teaching; --knn-lambda is "
                                                                  "not read)")
    parser.add_argument("--k", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-n", type=int, default=DEFAULTS["top_n"])
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULTS["max_new_tokens"])
    parser.add_argument("--sample", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int)
    parser.add_argument("--precise", action="store_true",
                        help="compare: time each component alone, the median of 3 runs")
    parser.add_argument("--family", help="which-memory, batch: whose memories to ask (default: the base's)")
    parser.add_argument("--file", help="batch: a .txt (one prompt a line) or .csv (a column named prompt, else the "
                                       "first) file of prompts; without it, TEXT holds one prompt a line")
    parser.add_argument("--csv", help="which-memory, batch: write the table to this CSV file instead of printing JSON")
    args = engine_options(parser).parse_args()
    engine = engine_from(args, one_family=args.command not in ("serve", "prepare"))
    if args.command == "prepare" or args.preload:
        print(json.dumps(engine.prepare(), indent=1))
    if args.command == "serve":
        from .ui import launch  # gradio is imported only to serve: the other commands start faster without it

        engine.prepare_in_background()  # no visitor waits on a build; a request for a store not ready says so
        launch(engine, server_port=args.port)
    if args.command in ("serve", "prepare"):
        return
    if args.command == "memories":
        out = endpoints.memories_json(engine, args.base)
    elif args.command in ("which-memory", "batch"):
        if args.command == "which-memory":
            out = which_memory.survey(engine, args.text, args.base, args.family)
            table = which_memory.rows(out)
        else:
            out = batch.batch(engine, args.text, args.base, args.family, args.top_n, path=args.file)
            table = batch.rows(out)
        if args.csv:
            return write_csv(args.csv, table)
    else:
        resolved = engine.resolve(base=args.base, domain=args.domain, alpha=args.alpha, knn_lambda=args.knn_lambda,
                                  lock_alpha=args.lock_alpha, k=args.k, temperature=args.temperature)
        if args.command == "compare":
            out = endpoints.compare_json(engine, resolved, args.text, top_n=args.top_n, precise=args.precise)
        elif args.command == "generate":
            out = generate.generate(engine, resolved, args.text, max_new_tokens=args.max_new_tokens, sample=args.sample,
                                    seed=args.seed)
        else:
            out = endpoints.score_json(engine, resolved, args.text)
    print(json.dumps(out, indent=1, ensure_ascii=False))


def memory_command(argv: list[str]):
    """The page's "Your memory" tab on the command line; what it makes belongs to the operator, so every visitor of
    the page sees it."""
    parser = argparse.ArgumentParser(prog="python -m app.serve.cli memory", description=memory_command.__doc__)
    # after the action, as the other commands take them
    models = [engine_options(argparse.ArgumentParser(add_help=False))]
    actions = parser.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", parents=models,
                               help="FILE (.txt, .txt.gz, .jsonl) -> a memory with a live kNN-LM")
    build.add_argument("file")
    build.add_argument("--name", required=True)
    build.add_argument("--base", help="whose keys the datastore holds (default: the first base)")
    distil = actions.add_parser("distil", parents=models,
                                help="train the memory's Memory Decoder here, in the foreground (again after a stop: "
                                     "it resumes from its checkpoint)")
    distil.add_argument("name")
    distil.add_argument("--steps", type=int, help="default: from the token count")
    actions.add_parser("list", parents=models, help="the memories made here")
    delete = actions.add_parser("delete", parents=models)
    delete.add_argument("name")
    args = parser.parse_args(argv)
    registry = memories.of(engine_from(args))
    if args.action == "build":
        if not os.path.isfile(args.file):
            raise InputError(f"no file {args.file}")
        made = registry.build(memories.OPERATOR, args.name, args.base, upload=args.file, progress=print_progress)
        out = registry.describe(made)
    elif args.action == "distil":
        out = registry.describe(registry.distil(memories.OPERATOR, args.name, args.steps, foreground=True))
    elif args.action == "list":
        out = [registry.describe(m) for m in registry.visible(memories.OPERATOR)]
    else:
        registry.remove(memories.OPERATOR, args.name)
        out = {"deleted": args.name}
    print(json.dumps(out, indent=1))


def deploy_command(argv: list[str]):
    """This repository as a Hugging Face Space serving a preset (needs a write token: `hf auth login` or HF_TOKEN)."""
    parser = argparse.ArgumentParser(prog="python -m app.serve.cli deploy", description=deploy_command.__doc__)
    parser.add_argument("--space", required=True, help="OWNER/NAME; created (public, Gradio) when it does not exist")
    parser.add_argument("--preset", default=os.environ.get("MEMDEC_PRESET", "embedded"),
                        help=f"embedded, {', '.join(presets.PRESETS)}; a,b for several that the page switches among")
    parser.add_argument("--hardware", help="request this hardware now, e.g. cpu-basic, t4-small, l4x1, zero-a10g "
                                           "(paid hardware is billed; default: leave it as it is)")
    parser.add_argument("--cache", help="MEMDEC_CACHE on the Space, e.g. /data/memdec-cache with persistent storage")
    parser.add_argument("--variable", action="append", default=[], metavar="KEY=VALUE",
                        help="another variable, e.g. MEMDEC_CORPUS_TOKENS=2000000 (repeat)")
    parser.add_argument("--secret", action="append", default=[], metavar="NAME",
                        help="a secret whose value is this shell's $NAME, e.g. HF_TOKEN for gated bases (repeat)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be uploaded and set, and stop")
    args = parser.parse_args(argv)
    bad = [item for item in args.variable if "=" not in item or not item.split("=", 1)[0]]
    if bad:
        parser.error(f"--variable {bad[0]!r}: give KEY=VALUE")
    extra = dict(item.split("=", 1) for item in args.variable)
    chosen = deploy.plan(args.space, args.preset.split(","), args.hardware, args.cache, extra, args.secret)
    print(deploy.describe(chosen))
    if not args.dry_run:
        print(f"deployed: {deploy.push(chosen)}")


def write_csv(path: str, table: list[dict]):
    """The table the page exports, as CSV (app.serve.tables.to_csv)."""
    to_csv(table, path)
    print(f"wrote {len(table)} rows to {path}", file=sys.stderr)


def print_progress(fraction: float, desc: str):
    print(f"\r{desc}: {fraction:.0%}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
