"""The documentation cannot drift from the code: docs/config.md is the rendered schema, every
source reference of docs/algorithm.md exists, nothing a user reads points at the project's
private material, README's test command is CI's, the license matches pyproject."""

import dataclasses
import re
import sys
from pathlib import Path

import pytest
from hm2bp import config as hconfig
from hm2bp.config.doc import render_markdown
from hm2bp.hyper import HYPERPARAMETERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the package's own dependency before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_config_md_is_the_rendered_schema():
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == render_markdown(), (
        "docs/config.md is out of date: python -m hm2bp.config.doc > docs/config.md")


def test_every_config_key_has_a_meaning():
    fields = {f.name for f in dataclasses.fields(hconfig.RunConfig)}
    documented = set(hconfig.FIELD_DOCS) | set(HYPERPARAMETERS)
    assert fields == documented, (fields - documented, documented - fields)
    text = render_markdown()
    for name in fields:
        assert f"| `{name}` |" in text, name


def _code_references(text: str) -> list[tuple[str, list[str]]]:
    """(path, [names]) of every `path` (`name`, ...) on the **Code:** lines."""
    refs = []
    for block in re.findall(r"\*\*Code:\*\*(.*?)(?:\n\n|\Z)", text, flags=re.S):
        for path, names in re.findall(r"`([\w./-]+\.(?:hpp|cuh|cu|cpp|py))`(?:\s*\(([^)]*)\))?", block):
            refs.append((path, re.findall(r"`(\w+)`", names)))
    return refs


def test_algorithm_md_points_at_code_that_exists():
    refs = _code_references((ROOT / "docs" / "algorithm.md").read_text())
    assert len(refs) > 40
    for path, names in refs:
        source = ROOT / path
        assert source.is_file(), path
        text = source.read_text()
        for name in names:
            assert re.search(rf"\b{name}\b", text), f"{name} not in {path}"
    # every shared formula file is described
    cited = {p for p, _ in refs}
    for header in (ROOT / "csrc" / "hm2bp").glob("*.hpp"):
        if header.name != "common.hpp":
            assert f"csrc/hm2bp/{header.name}" in cited, header.name


USER_FACING = ["README.md", "CITATION.cff", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", sorted({*USER_FACING, *(str(p.relative_to(ROOT)) for p in
                                                         (ROOT / "python" / "hm2bp").rglob("*.py"))}))
def test_nothing_user_facing_points_at_private_material(path):
    text = (ROOT / path).read_text()
    for pattern in (r"\.\./shared", r"/work/shared", r"\bSPEC(_CNN)?\.md\b"):
        assert not re.search(pattern, text), f"{path} mentions {pattern}; point at docs/ instead"


def _pytest_command(text: str) -> str:
    found = re.findall(r"python -m pytest[^\n`#&]*", text)
    assert found, "no pytest command"
    return found[0].strip()


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Two commands\n\n(?:<!--.*?-->\n)?```bash\n(.*?)```", readme, flags=re.S).group(1)
    install, test = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert install.startswith("pip install . && hm2bp-train")
    ci = (ROOT / ".ci" / "run").read_text()
    # CI installs at least README's extras (and the optional ones, so that their tests run)
    readme_extras = set(re.search(r'"\.\[([\w,]+)\]"', test).group(1).split(","))
    ci_extras = set(re.search(r'pip install --quiet "\.\[([\w,]+)\]"', ci).group(1).split(","))
    assert "test" in readme_extras and readme_extras <= ci_extras
    assert _pytest_command(test) == _pytest_command(ci)


def test_license_matches_pyproject_and_citation_names_the_paper():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "the hm2bp authors" in license_text
    citation = (ROOT / "CITATION.cff").read_text()
    assert "Hybrid Macro/Micro Level Backpropagation for Training Deep Spiking Neural Networks" in citation
    assert "start: 7005" in citation and "end: 7015" in citation
    assert f"version: {project['version']}" in citation
    readme = (ROOT / "README.md").read_text()
    assert "pages     = {7005--7015}" in readme and "CITATION.cff" in readme


def test_readme_small_cnn_toml_trains_on_the_bundled_digits(tmp_path):
    # README's layer-stack example needs no download: it runs as shown (here on fewer samples)
    from hm2bp import Trainer

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    example = [b for b in blocks if "[[network.layer]]" in b and 'type = "conv2d"' in b]
    assert len(example) == 1
    path = tmp_path / "small-cnn.toml"
    path.write_text(example[0])
    cfg = hconfig.build_config(config_file=path, train_size=100, test_size=50, epochs=1)
    assert cfg.dataset == "mnist-mini" and cfg.layers == [784, 8 * 24 * 24, 8 * 6 * 6, 10]
    result = Trainer(cfg, tmp_path / "run").fit()
    assert result.epochs_completed == 1 and 0 <= result.final_test_accuracy <= 1
