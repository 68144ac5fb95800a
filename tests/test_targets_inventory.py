"""Fleet inventories (TOML and Ansible INI) and the name checks that keep paths on the device."""
from __future__ import annotations

import pytest

from edgebench.host.errors import UserError
from edgebench.host.targets.inventory import load_inventory
from edgebench.host.targets.transfer import safe_name, safe_relpath


def test_toml_inventory_with_defaults(tmp_path):
    f = tmp_path / "fleet.toml"
    f.write_text('[defaults]\nuser = "pi"\npython = "/home/pi/venv/bin/python"\n'
                 '[devices.pi4-a]\nhost = "192.0.2.20"\n'
                 '[devices.jetson]\nhost = "198.51.100.5"\nport = 2222\nuser = "nvidia"\n'
                 'identity_file = "~/.ssh/jetson"\n'
                 '[devices.here]\nhost = "local"\n')
    a, j, h = load_inventory(str(f))
    assert (a.name, a.host, a.user, a.port, a.python) == ("pi4-a", "192.0.2.20", "pi", None,
                                                          "/home/pi/venv/bin/python")
    assert (j.user, j.port, j.identity_files) == ("nvidia", 2222, ["~/.ssh/jetson"])
    assert h.kind == "local"


def test_ansible_ini_inventory(tmp_path):
    f = tmp_path / "hosts.ini"
    f.write_text("# fleet\n[all:vars]\nansible_user=pi\n\n"
                 "[pis]\npi4-a ansible_host=192.0.2.20\n"
                 "pi4-b ansible_host=192.0.2.21 ansible_port=2200 ansible_user=bench\n"
                 "[pis:vars]\nansible_ssh_private_key_file=~/.ssh/pi\n"
                 "[jetsons]\njetson.lan ansible_python_interpreter=/usr/bin/python3.8\n"
                 "[boxes]\nbuilder ansible_connection=local\n"
                 "[edge:children]\npis\njetsons\n")
    specs = {s.name: s for s in load_inventory(str(f))}
    assert set(specs) == {"pi4-a", "pi4-b", "jetson.lan", "builder"}
    assert (specs["pi4-a"].host, specs["pi4-a"].user, specs["pi4-a"].identity_files) == (
        "192.0.2.20", "pi", ["~/.ssh/pi"])
    assert (specs["pi4-b"].port, specs["pi4-b"].user) == (2200, "bench")
    assert specs["jetson.lan"].host == "jetson.lan"
    assert specs["jetson.lan"].python == "/usr/bin/python3.8"
    assert specs["builder"].kind == "local"


@pytest.mark.parametrize("text,match", [
    ('[devices.a]\nhost = "h"\nbogus = 1\n', "unknown keys"),
    ('[devices.a]\nport = "x"\n', "bad port"),
    ('[devices."../x"]\nhost = "h"\n', "refusing"),
    ("[devices\n", "inventory"),
])
def test_bad_toml_inventory(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError, match=match):
        load_inventory(str(f))


def test_missing_inventory(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_inventory(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize("bad", ["../x", "a/../../b", "/etc/passwd", "models/$(id).tflite",
                                 "models/a;rm -rf ~.tflite", "models/`x`", "a\\b", "", "..",
                                 "models/.hidden/../x", "m/x y"])
def test_unsafe_paths_refused(bad):
    with pytest.raises(UserError, match="refusing"):
        safe_relpath(bad)


def test_safe_paths_pass():
    assert safe_relpath("models/resnet18.int8.tflite") == "models/resnet18.int8.tflite"
    assert safe_name("20261125T181000Z", "run id") == "20261125T181000Z"


def test_target_help_lists_kinds():
    from cli_runner import run_cli
    code, out, _ = run_cli("deploy", "--target", "help")
    assert code == 0 and "local" in out and "ssh" in out and "--inventory" in out
