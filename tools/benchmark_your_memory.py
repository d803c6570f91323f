"""How long a memory of your own takes, from a file to a usable Memory Decoder, through the command line that the
README documents (the page's "Your memory" tab runs the same registry):

    python tools/benchmark_your_memory.py [--tokens 100000] [--base large]

The corpus is the first documents of the committed licence corpus (assets/corpora/law/train.txt.gz) up to --tokens
tokens. It runs `python -m app.serve.cli memory build` and `memory distil` on the embedded family in a cache of its own
(a temporary folder), so it neither sees nor leaves memories in the operator's cache, and writes
assets/results/your_memory.json: the corpus's tokens, the wall time of each command, each phase of the distillation,
the validation perplexities and alpha from the job's status.json, and the load average before and after.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core import paths  # noqa: E402
from app.core.documents import read_documents  # noqa: E402
from app.core.files import read_json, write_json  # noqa: E402
from app.core.models import load_tokenizer  # noqa: E402
from app.serve.uploads import token_counts  # noqa: E402
from tools.benchmark_cost import machine  # noqa: E402


def corpus(tokens: int, tokenizer) -> list[str]:
    """The licence corpus's first documents whose tokens, counted as the upload counts them, reach `tokens`."""
    chosen, total = [], 0
    for doc in read_documents(paths.corpus_path("law", "train")):
        if total >= tokens:
            break
        chosen.append(doc)
        total += token_counts({"doc": [doc]}, tokenizer)["doc"]
    return chosen


def timed(command: list[str], env: dict) -> tuple[float, dict]:
    """(seconds, the JSON the command prints); its progress goes to this terminal."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app.serve.cli", *command], cwd=ROOT, env=env, check=True,
                          stdout=subprocess.PIPE, text=True)
    return round(time.perf_counter() - start, 1), json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--base", default="large")
    parser.add_argument("--out", type=Path, default=paths.RESULTS / "your_memory.json")
    args = parser.parse_args()
    described = machine()
    name = f"law{args.tokens // 1000}k"
    with tempfile.TemporaryDirectory(prefix="memdec-your-memory-") as cache:
        upload = Path(cache) / f"{name}.txt"
        upload.write_text("\n\n".join(corpus(args.tokens, load_tokenizer(paths.tokenizer_folder()))) + "\n")
        upload_bytes = upload.stat().st_size
        env = os.environ | {"MEMDEC_CACHE": cache}
        models = ["--preset", "embedded"]
        build_s, built = timed(["memory", "build", str(upload), "--name", name, "--base", args.base, *models], env)
        distil_s, _ = timed(["memory", "distil", name, *models], env)
        status = read_json(Path(cache) / "memories" / name / "making" / "status.json")
    results = {"what": "a memory of your own through `python -m app.serve.cli memory build` and `memory distil` "
                       "(embedded family, one process each, timed from outside); phases from the job's status.json",
               "machine": described | {"load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
               "corpus": {"source": "assets/corpora/law/train.txt.gz, first documents", "upload_bytes": upload_bytes,
                          "tokens": built["tokens"],
                          "documents": built["documents"]},
               "base": args.base, "estimated_distillation_s": built["estimated_distillation_s"],
               "build_s": build_s, "distil_s": distil_s, "total_s": round(build_s + distil_s, 1),
               "steps": status["steps"], "phases_s": status["timings"], "alpha": status["alpha"],
               "temperature": status["temperature"], "knn_lambda": status["knn_lambda"],
               "validation_perplexity": status["validation_perplexity"]}
    write_json(args.out, results)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
