"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the examples write files
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["sol"].group_mean.shape == (2, 101, 2, 3)  # saves every mu t = 1
    assert (tmp_path / "results" / "run.ckpt.h5").exists()
    assert namespace["mf"].P.shape == (101, 1000, 3)
    assert namespace["sol3"].occupations.shape == (1, 101, 2, 3)
    assert namespace["dloss"].shape == () and abs(float(namespace["dloss"])) > 0
