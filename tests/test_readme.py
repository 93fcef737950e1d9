"""The README's promises, executed: its model example works as printed, and its first
two commands are the ones CI and the set-up script run."""
import re

from checkers.linearizable import LinearizableChecker
from checkers.linearizable.models import MODELS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    return README[start:README.index("\n#", start + len(title))]


def test_the_adding_a_model_example_runs_as_printed():
    code = re.search(r"```python\n(.*?)```", _section("### Adding a model"), re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    try:
        def h(*ops):
            out = []
            for i, (p, f, v, r) in enumerate(ops):
                out += [{"index": 2 * i, "type": "invoke", "process": p, "f": f, "value": v, "time": 2 * i},
                        {"index": 2 * i + 1, "type": "ok", "process": p, "f": f, "value": r, "time": 2 * i + 1}]
            return out
        checker = LinearizableChecker("counter", processes=1)
        good = checker.check(h((0, "add", 2, 2), (1, "read", None, 2), (0, "add", 1, 1), (1, "read", None, 3)), {})
        bad = checker.check(h((0, "add", 2, 2), (1, "read", None, 3)), {})
        assert good["valid"] is True
        assert bad["valid"] is False
    finally:
        MODELS.pop("counter", None)


def test_the_first_two_commands_set_up_and_ci_runs_the_second():
    blocks = re.search(r"```sh\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert blocks[0].startswith("./setup.sh && .venv/bin/tectonic test ")
    assert blocks[1] == "./setup.sh && .venv/bin/pytest -q"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./setup.sh" in ci and ".venv/bin/pytest -q" in ci
