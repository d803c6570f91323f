"""The engine from the command line, printing the same JSON as the API; or the app on any set of models.

    python -m app.serve.cli compare "The protein binds to" --domain biomed
    python -m app.serve.cli generate "The licence grants" --domain law --max-new-tokens 20
    python -m app.serve.cli score "Gross domestic product fell." --domain finance --alpha 0.6
    python -m app.serve.cli serve --model gpt2=openai-community/gpt2 --memory wiki=Clover-Hill/MemoryDecoder-gpt2-small,wiki.txt.gz

Without --model and --memory the engine uses the embedded models.
"""
import argparse
import json

from . import endpoints
from .engine import DEFAULTS, Engine, InputError, Memory


def engine_from(args) -> Engine:
    if not args.model and not args.memory:
        return Engine.embedded()
    bases = dict(item.split("=", 1) for item in args.model)
    memories = {}
    for item in args.memory:
        domain, spec = item.split("=", 1)
        decoder, corpus = spec.split(",", 1)
        memories[domain] = Memory.from_folder(decoder, corpus)
    return Engine(bases, memories)


def main():
    try:
        run()
    except InputError as error:
        raise SystemExit(f"error: {error}")


def run():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["compare", "generate", "score", "serve"])
    parser.add_argument("text", nargs="?", default="")
    parser.add_argument("--model", action="append", default=[], help="a base model NAME=FOLDER_OR_HUB_ID (repeat)")
    parser.add_argument("--base", help="which base to use (default: the first)")
    parser.add_argument("--memory", action="append", default=[], help="DOMAIN=DECODER,CORPUS (repeat)")
    parser.add_argument("--domain")
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--k", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-n", type=int, default=DEFAULTS["top_n"])
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULTS["max_new_tokens"])
    parser.add_argument("--sample", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    engine = engine_from(args)
    if args.command == "serve":
        from .ui import launch  # gradio is imported only to serve: the other commands start faster without it

        launch(engine, server_port=args.port)
        return
    knn = dict(k=args.k, temperature=args.temperature)
    if args.command == "compare":
        out = endpoints.compare_json(engine, args.text, args.base, args.domain, args.alpha, top_n=args.top_n, **knn)
    elif args.command == "generate":
        out = endpoints.generate_json(engine, args.text, args.base, args.domain, args.max_new_tokens, args.sample,
                                      args.seed, args.alpha, **knn)
    else:
        out = endpoints.score_json(engine, args.text, args.base, args.domain, args.alpha, **knn)
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
