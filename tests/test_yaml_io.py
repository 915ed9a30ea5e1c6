"""YAML is read through one bounded safe loader: alias bombs, deep nesting, duplicate keys and
files that are not UTF-8 are one clear error naming the file and line, never a traceback."""

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from iclkit.errors import ConfigError, DataError
from iclkit.experiment.config import load_config

MAX_VALUES, MAX_DEPTH = 100_000, 50  # iclkit.yaml_io's bounds

ICLKIT = Path(sys.executable).with_name("iclkit")


def billion_laughs(levels=9):
    """``sweep`` refers to 10**levels copies of one word through nested aliases."""
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"lol{level}: &l{level} [{refs}]")
    lines.append(f"sweep: {{k: *l{levels - 1}}}")
    return "\n".join(lines) + "\n"


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    config = tmp_path / "bomb.yaml"
    config.write_text(billion_laughs())
    result = subprocess.run(
        [str(ICLKIT), "run", str(config), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # lol4 (line 5) is the first anchor that stands for more than 100,000 values.
    assert f"bomb.yaml:5: the YAML holds more than {MAX_VALUES:,} values" in result.stderr


def test_yaml_alias_expansion_is_counted_not_built():
    from iclkit.yaml_io import load_yaml_text

    # 10**5 + a few values: just over the bound, refused; 10**4: read, aliases still shared.
    with pytest.raises(ConfigError, match="more than 100,000 values"):
        load_yaml_text(billion_laughs(5), "c.yaml")
    small = load_yaml_text(billion_laughs(3), "c.yaml")
    assert small["sweep"]["k"][0] is small["lol1"]


def test_yaml_deep_nesting_names_the_line_instead_of_recursion_error(tmp_path):
    config = tmp_path / "deep.yaml"
    config.write_text("name: x\nsweep:\n  k: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(ConfigError, match=rf"deep.yaml:3: .* more than {MAX_DEPTH} levels deep"):
        load_config(config)


def test_yaml_duplicate_keys_are_an_error_naming_both_lines(tmp_path):
    config = tmp_path / "twice.yaml"
    config.write_text("name: a\nsweep:\n  k: 4\n  seeds: [0]\n  k: 8\n")
    with pytest.raises(ConfigError, match=r"twice.yaml:5: the key 'k' is written twice \(first on"):
        load_config(config)
    # YAML merge keys may override what they merge in: that is not a duplicate.
    from iclkit.yaml_io import load_yaml_text

    merged = load_yaml_text("base: &b {k: 1, seeds: [0]}\ngrid:\n  <<: *b\n  k: 2\n", "m.yaml")
    assert merged["grid"] == {"k": 2, "seeds": [0]}


def test_yaml_that_is_not_utf8_names_file_line_and_encoding(tmp_path):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("name: x\n# café\ndata: {}\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.yaml:2: not UTF-8 text \(byte 0xe9 at column 6\)"):
        load_config(config)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfname: x\n")
    with pytest.raises(ConfigError, match=r"bom.yaml: 2 problem.*\n  data: Field required"):
        load_config(bom)  # read past the byte order mark: only the missing keys are wrong
