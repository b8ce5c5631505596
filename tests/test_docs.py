"""The documentation tells the truth: the public API is documented and in the reference, the
site builds with no warning, code blocks run (or at least compile), and the command-line and
timing pages match the code that produces them.

Code blocks: every ```python block in README.md and docs/*.md must compile (top-level
``await`` allowed: such snippets live inside a coroutine). A block whose first line is
``# run`` is executed as a script against the test etcd (``ETCD_ENDPOINTS``) and must exit 0
by itself.

The pages read the same on a code host as on the site: no snippet includes (they show as a
bare ``--8<--`` line there) and no admonitions; a block that shows a repository file is a copy,
marked ``<!-- copy of <path>: ... -->``, and must equal the file. The API page lists every
public name in plain Markdown before the generated reference.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import etcd_elector
from etcd_elector._election._timing import check_timing
from etcd_elector._environ import without_etcd_settings
from etcd_elector.cli._checkconfig import render
from etcd_elector.cli._exit import EXIT_CODES_HELP, ExitCode
from etcd_elector.cli._parser import _ENV_HELP, _build

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
COPY = re.compile(r"^<!-- copy of (\S+): [^\n]*-->\n```\w*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[tuple[str, str]]:
    """(``page:line``, source) of every python block."""
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            source = match.group(1)
            line = text.count("\n", 0, match.start()) + 1
            blocks.append((f"{page.relative_to(ROOT)}:{line}", source))
    return blocks


BLOCKS = python_blocks()
RUNNABLE = [(where, source) for where, source in BLOCKS if source.startswith("# run\n")]


# -- the public API --------------------------------------------------------------------------


def test_all_is_sorted_without_duplicates() -> None:
    names = etcd_elector.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_public_name_exists_and_is_documented() -> None:
    undocumented = []
    for name in etcd_elector.__all__:
        obj = getattr(etcd_elector, name)  # AttributeError: a name that does not exist
        if name == "__version__":
            assert obj == importlib.metadata.version("etcd-elector")
            continue
        doc = inspect.getdoc(obj) or ""
        # dataclasses and enums get a generated docstring; it does not count
        if not doc or doc.startswith((f"{obj.__name__}(", "Create a collection of name/value")):
            undocumented.append(name)
    assert not undocumented


def raised_names(function: object) -> set[str]:
    """Names of our errors that ``function``'s own body raises by name."""
    try:
        source = inspect.getsource(function)  # type: ignore[arg-type]
        tree = ast.parse(inspect.cleandoc("\n" + source))
    except (OSError, TypeError, SyntaxError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in etcd_elector.__all__:
                names.add(target.id)
    return names


def public_callables() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for name in etcd_elector.__all__:
        obj = getattr(etcd_elector, name)
        if inspect.isfunction(obj):
            found.append((name, obj))
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                function = member.fget if isinstance(member, property) else member
                if inspect.isfunction(function):
                    found.append((f"{name}.{attr}", function))
    return found


def test_callables_that_raise_our_errors_say_so() -> None:
    """A public function or method whose body raises one of our errors documents it with
    ``:raises`` (in its own docstring, or its class's for ``__init__``)."""
    missing = []
    for qualname, function in public_callables():
        if not raised_names(function):
            continue
        doc = function.__doc__ or ""
        if qualname.endswith(".__init__"):
            doc += getattr(etcd_elector, qualname.split(".")[0]).__doc__ or ""
        if ":raises" not in doc:
            missing.append(qualname)
    assert not missing


# -- the site --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` into a temporary directory: any warning fails it."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_site_builds_strictly_and_has_every_page(site: Path) -> None:
    for page in DOCS.rglob("*.md"):
        path = page.relative_to(DOCS).with_suffix("")
        built = "index.html" if path.name == "index" else f"{path}/index.html"
        assert (site / built).exists(), page.name


def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    html = (site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="etcd_elector\.([A-Za-z_]+)"', html))
    assert set(etcd_elector.__all__) <= anchors


# -- pages read as plain Markdown (a code host shows them without the site's extensions) -----


def test_pages_have_no_include_or_admonition_that_a_code_host_shows_raw() -> None:
    for page in PAGES:
        text = page.read_text()
        assert "--8<--" not in text, page.name
        assert not re.search(r"^(!!!|\?\?\?) ", text, re.MULTILINE), page.name


def test_copies_of_repository_files_equal_the_files() -> None:
    copies = [(page, path, body) for page in PAGES for path, body in COPY.findall(page.read_text())]
    shown = {path for _, path, _ in copies}
    assert {"examples/asyncio_worker.py", "examples/kubernetes/deployment.yaml"} <= shown
    for page, path, body in copies:
        assert body == (ROOT / path).read_text(), f"{page.name}: the copy of {path} is stale"


def test_the_api_page_lists_every_public_name_in_plain_markdown() -> None:
    """Before the generated reference (a bare directive on a code host), every public name
    is listed by what it is for."""
    text = (DOCS / "api.md").read_text()
    listed, directive = text.split("\n::: etcd_elector\n", 1)
    assert "\n:::" not in listed and "options:" in directive
    missing = [name for name in etcd_elector.__all__ if f"`{name}`" not in listed]
    assert not missing


# -- code blocks -----------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "source"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_python_blocks_compile(where: str, source: str) -> None:
    compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def test_some_blocks_are_runnable() -> None:
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize(("where", "source"), RUNNABLE, ids=[where for where, _ in RUNNABLE])
def test_runnable_blocks_run(where: str, source: str, etcd_endpoint: str) -> None:
    env = without_etcd_settings(os.environ)
    done = subprocess.run(
        [sys.executable, "-c", source],
        env={**env, "ETCD_ENDPOINTS": etcd_endpoint},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"{where}\n{done.stdout}{done.stderr}"


# -- pages generated from code ---------------------------------------------------------------


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _build()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def sections(text: str) -> dict[str, str]:
    """``## `name ...` `` headings of cli.md -> their text."""
    parts = re.split(r"^## `([a-z-]+)[^`]*`\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_cli_reference_covers_every_command_and_option() -> None:
    text = (DOCS / "cli.md").read_text()
    documented = sections(text)
    commands = subcommands()
    assert set(documented) == set(commands)
    global_options = long_options(_build())
    global_part = text.split("## Environment", 1)[0]
    for option in global_options:
        assert f"`{option}" in global_part, option
    for name, parser in commands.items():
        for option in long_options(parser) - global_options:
            assert f"`{option}" in documented[name], f"{name} {option}"


def test_cli_reference_lists_every_variable_and_exit_code() -> None:
    text = (DOCS / "cli.md").read_text()
    for variable in re.findall(r"\b(ETCD(?:CTL)?_[A-Z_]+)", _ENV_HELP):
        assert f"`{variable}`" in text, variable
    table = text.split("## Exit codes", 1)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}
    helped = {int(code) for code in re.findall(r"^  (\d+) ", EXIT_CODES_HELP, re.MULTILINE)}
    assert helped == documented


def test_timing_page_shows_the_real_check_config_output() -> None:
    text = (DOCS / "timing.md").read_text()
    assert f"$ etcd-elector check-config\n{render(check_timing())}\n```" in text
