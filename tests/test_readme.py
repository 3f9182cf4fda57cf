"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 1
    monkeypatch.chdir(tmp_path)  # the examples write files
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["sol"].group_mean.shape == (2, 101, 2, 3)  # saves every mu t = 1
    # The 1e-3 seed has grown by mu t = 100 (the instability of the tutorials).
    perp = abs(namespace["sol"].group_mean[:, -1, :, :2]).max()
    assert perp > 1e-2, perp
