"""The docs mention only what exists, and the README's test command is the one CI runs.

Checked in the README, the changelog and every page of ``docs/``: relative Markdown links (and their
``#anchors``) resolve; repository paths, file names and ``module.name`` references in code spans and
code blocks exist; every ``--option`` of a documented ``bash scripts/…`` or ``python -m …`` command
is one its script knows. Code and comments that point at a docs page (``docs/x.md, "Heading"``) name
a page and a heading that exist. Paths the repository ignores (``.venv/``, ``.pgdata/``, ``.env``)
are things the commands create, and pass. Runtime names (``validated/report.json``, placeholders
such as ``{staging}/{account}``, Ozon's ``/v4/…`` paths, URLs) are not repository paths and are not
checked.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Extensions of files a doc may name by their bare name (``ratelimit.py``); runtime files such as
#: ``manifest.json`` or ``products.tsv`` are not repository files.
CODE_EXTENSIONS = {".py", ".sh", ".sql", ".md", ".toml", ".txt", ".yaml", ".yml", ".js", ".svg", ".cfg"}
#: A token with one of these characters is a placeholder, a pattern or an assignment, not a path.
NOT_A_PATH = set("<>{}*…|=@?#%$~\\")
SHELL_BLOCKS = {"bash", "sh", "shell", "console", ""}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`]+)`")
COMMAND = re.compile(
    r"(?:\bbash\s+(scripts/[\w.-]+\.sh)|\bpython3?\s+(?:(scripts/[\w.-]+\.py)|-m\s+([\w.]+)))(.*)"
)
DOC_REFERENCE = re.compile(r'docs/([\w-]+\.md)(?:,\s*"([^"]+)")?')


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@dataclass
class Doc:
    """The parts of one Markdown file that name things."""

    path: str
    headings: list[str] = field(default_factory=list)
    links: list[tuple[int, str]] = field(default_factory=list)
    #: (line, text, in a shell block or a code span) of every code span and code-block line
    code: list[tuple[int, str, bool]] = field(default_factory=list)

    @classmethod
    def parse(cls, path: str, text: str) -> Doc:
        doc = cls(path)
        fence: str | None = None
        for number, line in enumerate(text.splitlines(), 1):
            opening = re.match(r"^\s*```\s*([\w-]*)", line)
            if opening:
                fence = None if fence is not None else opening.group(1).lower()
                continue
            if fence is not None:
                if fence != "mermaid":
                    doc.code.append((number, line, fence in SHELL_BLOCKS))
                continue
            if re.match(r"^#{1,6}\s", line):
                doc.headings.append(line.lstrip("#").strip())
            for span in CODE_SPAN.findall(line):
                doc.code.append((number, span, True))
            doc.links.extend((number, target) for target in LINK.findall(CODE_SPAN.sub("", line)))
        return doc

    def anchors(self) -> set[str]:
        seen: dict[str, int] = {}
        anchors = set()
        for heading in self.headings:
            base = slug(heading)
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchors.add(base if count == 0 else f"{base}-{count}")
        return anchors


class Repo:
    """The files of a checkout, as the docs may name them."""

    def __init__(self, root: Path):
        self.root = root
        ignore = root / ".gitignore"
        self.ignored = [
            p.strip() for p in (ignore.read_text().splitlines() if ignore.exists() else []) if p.strip()
        ]
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        for folder, dirs, files in os.walk(root):
            rel = Path(folder).relative_to(root).as_posix()
            dirs[:] = [d for d in dirs if d != ".git" and not self.is_ignored(_join(rel, d))]
            self.dirs.update(_join(rel, d) for d in dirs)
            self.files.update(_join(rel, f) for f in files if not self.is_ignored(_join(rel, f)))
        self.top = {p.split("/")[0] for p in self.files | self.dirs}
        self.names = {p.rsplit("/", 1)[-1] for p in self.files | self.dirs}
        package = root / "plugins" / "ozon_inventory"
        self.modules = (
            {p.stem: p for p in package.glob("*.py")}
            | {p.name: p / "__init__.py" for p in package.iterdir() if (p / "__init__.py").exists()}
            if package.exists()
            else {}
        )

    def is_ignored(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        for pattern in self.ignored:
            bare = pattern.strip("/")
            if "/" in bare and fnmatch.fnmatch(path.strip("/"), bare):
                return True
            if any(fnmatch.fnmatch(part, bare) for part in parts):
                return True
        return False

    def exists(self, path: str) -> bool:
        path = path.strip("/")
        return path in self.files or path in self.dirs

    def has_suffix(self, path: str) -> bool:
        return any(p == path or p.endswith("/" + path) for p in self.files | self.dirs)

    def text(self, path: str) -> str:
        return (self.root / path).read_text(encoding="utf-8")

    def module_file(self, dotted: str) -> str | None:
        """The repository file of ``ozon_inventory.x`` / ``ozon_simulator.x`` / ``tests.x`` (or None)."""
        parts = dotted.split(".")
        base = "plugins/" if parts[0] == "ozon_inventory" else ""
        for candidate in (f"{base}{'/'.join(parts)}.py", f"{base}{'/'.join(parts)}/__main__.py"):
            if candidate in self.files:
                return candidate
        return None


def _join(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _tokens(text: str) -> list[str]:
    return [t.strip("\"'(),;:[]").rstrip(".") for t in text.split()]


def check_token(repo: Repo, token: str) -> str | None:
    """Why ``token`` names nothing in the repository, or None (fine, or not a repository name)."""
    token = token.split("(")[0]
    if not token or "://" in token or token[0] in "/-" or NOT_A_PATH & set(token):
        return None
    path = token.rstrip("/")
    if repo.is_ignored(path):
        return None
    extension = Path(path).suffix
    if "/" in path:
        if path.split("/")[0] in repo.top:
            return None if repo.exists(path) else f"{token} does not exist"
        if extension in CODE_EXTENSIONS and not repo.has_suffix(path):
            return f"no file ends with {token}"
        return None
    if path in CODE_EXTENSIONS:
        return None  # "every `.py` file"
    if extension in CODE_EXTENSIONS or re.fullmatch(r"\.[A-Za-z][\w.-]*", path):
        return None if path in repo.names else f"no file is named {token}"
    if re.fullmatch(r"[A-Za-z_]\w*(\.\w+)+", path):
        return _check_dotted(repo, path)
    return None


def _check_dotted(repo: Repo, dotted: str) -> str | None:
    """``ozon_inventory.read``, ``load._Differ``, ``config.RunSettings.method_choice``."""
    parts = dotted.split(".")
    if parts[0] == "ozon_inventory":
        parts = parts[1:]
    if not parts or parts[0] not in repo.modules:
        return None
    module = repo.modules[parts[0]]
    names = parts[1:]
    if module.name == "__init__.py" and names and (module.parent / f"{names[0]}.py").exists():
        module, names = module.parent / f"{names[0]}.py", names[1:]
    source = module.read_text(encoding="utf-8")
    for name in names:
        if not re.search(rf"\b{re.escape(name)}\b", source):
            return f"{dotted}: {module.relative_to(repo.root)} has no {name}"
    return None


def check_command(repo: Repo, line: str) -> list[str]:
    """Every ``--option`` of a ``bash scripts/x.sh`` / ``python -m x`` command is one its script knows."""
    problems = []
    for match in COMMAND.finditer(line):
        script, module = match.group(1) or match.group(2), match.group(3)
        target = script if script else (repo.module_file(module) if module else None)
        if target is None or target not in repo.files:
            continue  # a missing script is reported as a missing path; python -m pytest is not ours
        sources = [repo.text(target)]
        sources += [repo.text(p) for p in re.findall(r"\bscripts/[\w.-]+\.py", sources[0]) if p in repo.files]
        sources += [
            repo.text(f) for m in re.findall(r"-m\s+([\w.]+)", sources[0]) if (f := repo.module_file(m))
        ]
        known = "\n".join(sources)
        if re.search(r"-m\s+pytest", known):
            continue  # its options are pytest's
        arguments = re.split(r"\s#|\||&&|;", match.group(4))[0]
        for option in re.findall(r"(?<![\w-])(--[\w-]+)", arguments):
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", known):
                problems.append(f"{target} has no option {option}")
    return problems


def check_doc(repo: Repo, path: str) -> list[str]:
    """Everything ``path`` (a Markdown file of ``repo``) names that does not exist, one line each."""
    doc = Doc.parse(path, repo.text(path))
    problems = []
    folder = Path(path).parent
    for number, target in doc.links:
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        resolved = os.path.normpath(folder / file).replace(os.sep, "/") if file else path
        if file and not repo.exists(resolved):
            problems.append(f"{path}:{number}: link to {target}: {resolved} does not exist")
        elif anchor and resolved.endswith(".md"):
            anchors = Doc.parse(resolved, repo.text(resolved)).anchors()
            if anchor not in anchors:
                problems.append(f"{path}:{number}: link to {target}: no heading #{anchor} in {resolved}")
    for number, text, runnable in doc.code:
        for token in _tokens(text):
            problem = check_token(repo, token)
            if problem:
                problems.append(f"{path}:{number}: {problem}")
        if runnable:
            problems += [f"{path}:{number}: {p}" for p in check_command(repo, text)]
    return problems


def check_references(repo: Repo, path: str) -> list[str]:
    """``docs/x.md, "Heading"`` in code and comments: the page and the heading exist."""
    problems = []
    for match in DOC_REFERENCE.finditer(repo.text(path)):
        page = f"docs/{match.group(1)}"
        if page not in repo.files:
            problems.append(f"{path}: {page} does not exist")
        elif match.group(2):
            title = re.sub(r"\s*\n\s*(?:#:?|--)?\s*", " ", match.group(2)).strip()
            if title not in Doc.parse(page, repo.text(page)).headings:
                problems.append(f'{path}: {page} has no heading "{title}"')
    return problems


def ci_test_commands(ci_script: str) -> list[str]:
    """The invocations of ``scripts/test.sh`` in a CI script, as written (``exec`` dropped)."""
    commands = []
    for line in ci_script.splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("#") or "scripts/test.sh" not in line:
            continue
        commands.append(re.sub(r"^exec\s+", "", line))
    return commands


def without_environment(command: str) -> str:
    """``OZON_TEST_CLOCK=+365d bash scripts/test.sh`` -> ``bash scripts/test.sh``."""
    return re.sub(r"^(?:env\s+)?(?:\w+=\S*\s+)+", "", command)


def readme_commands(readme: str) -> list[str]:
    """The commands of the README's first shell block under "Two commands"."""
    section = readme.split("## Two commands", 1)[1]
    block = re.search(r"```(?:bash|sh)\n(.*?)```", section, re.DOTALL)
    assert block, 'the README\'s "Two commands" has no shell block'
    lines = (line.split("#")[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


# -- the repository's docs ------------------------------------------------------------------------

REPO = Repo(ROOT)
DOCS = ["README.md", "CHANGELOG.md", *sorted(p for p in REPO.files if re.fullmatch(r"docs/[^/]+\.md", p))]


@pytest.mark.parametrize("path", DOCS)
def test_every_name_in_the_docs_exists(path):
    assert check_doc(REPO, path) == []


def test_code_points_only_at_docs_and_headings_that_exist():
    code = sorted(
        p
        for p in REPO.files
        if Path(p).suffix in {".py", ".sql", ".sh", ".yaml", ".txt", ".toml"} and p != "tests/test_docs.py"
    )
    assert [problem for path in code for problem in check_references(REPO, path)] == []


def test_the_readme_is_short_and_links_every_page():
    readme = REPO.text("README.md")
    assert len(readme.splitlines()) <= 250
    linked = {target.split("#")[0] for _, target in Doc.parse("README.md", readme).links}
    assert set(DOCS) - {"README.md"} <= linked


def test_the_readme_test_command_is_what_ci_runs():
    demo, test = readme_commands(REPO.text("README.md"))
    assert demo == "bash scripts/demo.sh"
    assert test == "bash scripts/test.sh"
    ci = ci_test_commands(REPO.text(".ci/run"))
    assert ci, ".ci/run does not run scripts/test.sh"
    assert [without_environment(c) for c in ci] == [test] * len(ci)
    contributing = REPO.text("docs/contributing.md")
    assert [c for c in ci if c not in contributing] == [], "docs/contributing.md shows CI's commands"


# -- the checker itself, on a small fake repository ----------------------------------------------


@pytest.fixture
def fake(tmp_path):
    files = {
        ".gitignore": ".cache/\n.env\n",
        "scripts/run.sh": 'exec python scripts/run.py "$@"\n',
        "scripts/run.py": 'parser.add_argument("--size")\n',
        "scripts/test.sh": 'exec python -m pytest "$@"\n',
        "plugins/ozon_inventory/load.py": "class Prestage: ...\n",
        "plugins/ozon_inventory/read.py": "def runs(): ...\n",
        "docs/guide.md": "# Guide\n\n## Usage\n\n## Usage\n\n## How to use\n",
        "src/module.py": '"""See docs/guide.md, "Usage".\n\nAnd docs/guide.md, "Gone", docs/none.md."""\n',
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


FAKE_README = """# Fake

Run `scripts/run.sh` or `scripts/gone.sh`; see [guide](docs/guide.md#usage),
[the second usage](docs/guide.md#usage-1), [no page](docs/nope.md), [no heading](docs/guide.md#setup),
[here](#fake), [web](https://example.com/x.md). `module.py` and `NOTES.md`; `.cache/x` and `.env`
are made by the commands; `{staging}/{account}/page.json.gz`, `validated/report.json`, `/v4/product/info/stocks`.
`load.Prestage`, `load.Differ`, `ozon_inventory.read.runs`; a placeholder `<run>/x.py`.

```bash
bash scripts/run.sh --size 3 --colour red   # --comment is not an option
bash scripts/test.sh -m "not e2e" --lf
bash scripts/missing.sh --any
```

```mermaid
flowchart LR
    a[scripts/not/checked.py] --> b
```
"""


def test_the_checker_reports_each_missing_name_and_nothing_else(fake):
    (fake / "README.md").write_text(FAKE_README)
    assert sorted(check_doc(Repo(fake), "README.md")) == sorted(
        [
            "README.md:3: scripts/gone.sh does not exist",
            "README.md:4: link to docs/nope.md: docs/nope.md does not exist",
            "README.md:4: link to docs/guide.md#setup: no heading #setup in docs/guide.md",
            "README.md:5: no file is named NOTES.md",
            "README.md:7: load.Differ: plugins/ozon_inventory/load.py has no Differ",
            "README.md:10: scripts/run.sh has no option --colour",
            "README.md:12: scripts/missing.sh does not exist",
        ]
    )


def test_the_checker_reports_references_to_missing_pages_and_headings(fake):
    assert check_references(Repo(fake), "src/module.py") == [
        'src/module.py: docs/guide.md has no heading "Gone"',
        "src/module.py: docs/none.md does not exist",
    ]


def test_a_reference_title_may_wrap_across_comment_lines(fake):
    (fake / "src/wrapped.sql").write_text(
        '-- see docs/guide.md, "Usage\n-- "; docs/guide.md, "How to\n-- use"\n'
    )
    (fake / "src/wrapped.py").write_text('# docs/guide.md, "Gone\n# away"\n')
    repo = Repo(fake)
    assert check_references(repo, "src/wrapped.sql") == []
    assert check_references(repo, "src/wrapped.py") == [
        'src/wrapped.py: docs/guide.md has no heading "Gone away"'
    ]


@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        (
            "#!/usr/bin/env bash\n# runs bash scripts/test.sh\nexec bash scripts/test.sh\n",
            ["bash scripts/test.sh"],
        ),
        (
            "set -e\nbash scripts/test.sh\nOZON_TEST_CLOCK=+365d bash scripts/test.sh  # a year ahead\n",
            ["bash scripts/test.sh", "OZON_TEST_CLOCK=+365d bash scripts/test.sh"],
        ),
        ("bash scripts/test.sh -m 'not e2e'\n", ["bash scripts/test.sh -m 'not e2e'"]),
        ("bash scripts/demo.sh\n", []),
    ],
)
def test_ci_test_commands(ci, expected):
    assert ci_test_commands(ci) == expected


def test_a_ci_command_with_other_arguments_is_not_the_readme_command():
    assert without_environment("OZON_TEST_CLOCK=+365d A=1 bash scripts/test.sh") == "bash scripts/test.sh"
    assert without_environment("env OZON_TEST_CLOCK=+365d bash scripts/test.sh") == "bash scripts/test.sh"
    assert without_environment("bash scripts/test.sh -m 'not e2e'") != "bash scripts/test.sh"


def test_slugs_are_githubs():
    assert slug("Production set-up (docker-compose)") == "production-set-up-docker-compose"
    assert slug("moto's S3 server for the Celery proof") == "motos-s3-server-for-the-celery-proof"
    assert slug("Grid labels and what Airflow 3.3 allows") == "grid-labels-and-what-airflow-33-allows"
    assert slug("The `ozon` connection") == "the-ozon-connection"
