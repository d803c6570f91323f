"""Every third-party module that app/, tools/, tests/ or app.py imports is named by an install step of the README's
two commands (requirements.txt, or the pip line of tests/run.sh): a module that this machine merely happens to have
passes here and fails on a fresh one. Imports guarded by `except ImportError` (the `spaces` package, present only on
Hugging Face Spaces) are optional and left out. A module counts as declared only when its own distribution is named;
arriving as another package's dependency is not enough, since that package may drop it."""
import ast
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["app", "tools", "tests", "app.py"]


def distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(lines) -> set:
    """Distribution names in requirement lines: `torch==2.13.0`, `gradio>=6.0,<7  # why`,
    `-r requirements.txt` skipped."""
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", line)
        if match and not line.startswith("-"):
            names.add(distribution_key(match.group(0)))
    return names


def declared(requirements: str, run_sh: str) -> set:
    """What the README's commands install by name: requirements.txt and every package on a pip line of tests/run.sh
    (the script names its pip command $PIP)."""
    words = []
    for line in run_sh.splitlines():
        line = line.split("#", 1)[0]
        if "$PIP" in line or re.search(r"pip3? install", line):
            after = re.split(r"\$PIP|pip3? install", line, maxsplit=1)[1]
            words += [w for w in after.split() if not w.startswith(("-", "$")) and not w.endswith(".txt")]
    return requirement_names(requirements.splitlines()) | requirement_names(words)


def is_optional(node: ast.AST, parents: dict) -> bool:
    """Inside a `try:` body whose handlers catch ImportError (or ModuleNotFoundError)."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            caught = {ast.unparse(h.type) for h in parent.handlers if h.type is not None}
            if caught & {"ImportError", "ModuleNotFoundError", "(ImportError, ModuleNotFoundError)"}:
                return True
        child, parent = parent, parents.get(parent)
    return False


def imported_modules(root: Path) -> dict:
    """Top-level module name -> the first file that imports it, for every absolute, non-optional import."""
    found = {}
    files = [p for s in SOURCES for p in ([root / s] if s.endswith(".py") else sorted((root / s).rglob("*.py")))]
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if not is_optional(node, parents):
                for name in names:
                    found.setdefault(name.split(".")[0], path.relative_to(root))
    return found


def undeclared(root: Path, requirements: str, run_sh: str) -> dict:
    """Module -> (its file, its distributions or None when no installed distribution provides it), for every
    third-party module whose distribution no install step names."""
    local = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    names, providers = declared(requirements, run_sh), metadata.packages_distributions()
    missing = {}
    for module, path in imported_modules(root).items():
        if module in sys.stdlib_module_names or module in local:
            continue
        dists = {distribution_key(d) for d in providers.get(module, [])}
        if not dists & names:
            missing[module] = (str(path), sorted(dists) or None)
    return missing


def read(name: str) -> str:
    return (ROOT / name).read_text()


def test_every_imported_module_is_declared_by_an_install_step():
    missing = undeclared(ROOT, read("requirements.txt"), read("tests/run.sh"))
    assert not missing, "imported but installed by no step of the README's commands (module: file, distribution): " \
                        f"{missing}; add the distribution to requirements.txt, or to tests/run.sh if only tests use it"


def test_a_module_left_out_of_requirements_is_caught():
    """The check above is not vacuous: without datasketch's line it names datasketch and the file that imports it."""
    requirements = "\n".join(line for line in read("requirements.txt").splitlines()
                             if not line.startswith("datasketch"))
    missing = undeclared(ROOT, requirements, read("tests/run.sh"))
    assert set(missing) == {"datasketch"}
    assert missing["datasketch"] == ("app/make/near_duplicates.py", ["datasketch"])


def test_install_lines_are_read_as_pip_reads_them():
    run_sh = 'PIP="python -m pip install -q"\n$PIP torch==2.13.0\n$PIP -r requirements.txt pytest selenium  # why\n'
    assert declared("gradio>=6.0,<7  # the page\n-r other.txt\nfaiss-cpu>=1.9\n", run_sh) == \
        {"gradio", "faiss-cpu", "torch", "pytest", "selenium"}


def test_optional_imports_are_left_out(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "gpu.py").write_text("try:\n    import spaces\nexcept ImportError:\n    spaces = None\n"
                                             "import not_installed_anywhere\n")
    for folder in ("tools", "tests"):
        (tmp_path / folder).mkdir()
    (tmp_path / "app.py").write_text("import app.gpu\n")
    assert undeclared(tmp_path, "", "") == {"not_installed_anywhere": ("app/gpu.py", None)}
