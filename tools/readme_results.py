"""Copies each results table into the README, so that refreshing the README after a retrain is one command.

    python tools/readme_results.py            # rewrite every block from its file
    python tools/readme_results.py --check    # change nothing; exit 1 listing the blocks that differ from their file

A block is the lines between `<!-- results: assets/results/NAME.md -->` and `<!-- /results -->`; it holds the file's
text exactly (trailing newlines aside). tests/docs/test_readme_quotes.py checks the same.
"""
import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^(<!-- results: (\S+) -->\n)(.*?)^(<!-- /results -->)$", re.M | re.S)


def body(name: str) -> str:
    return (ROOT / name).read_text().rstrip("\n") + "\n"


def refreshed(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + body(m.group(2)) + m.group(4), text)


def stale(text: str) -> list[str]:
    """'README line N: NAME' for each block that differs from its file (or whose file is missing)."""
    out = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if not (ROOT / m.group(2)).is_file():
            out.append(f"README line {line}: {m.group(2)} does not exist")
        elif m.group(3) != body(m.group(2)):
            out.append(f"README line {line}: {m.group(2)}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    differ = stale(text)
    missing = [line for line in differ if line.endswith("does not exist")]
    if missing:
        sys.exit("\n".join(["results blocks whose file does not exist:", *missing]))
    if args.check:
        print("\n".join(["stale results blocks:", *differ] if differ else ["every results block is current"]))
        sys.exit(1 if differ else 0)
    README.write_text(refreshed(text))
    print("\n".join(["rewrote:", *differ] if differ else ["every results block was current"]))


if __name__ == "__main__":
    main()
