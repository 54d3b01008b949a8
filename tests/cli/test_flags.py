"""utils.cli.flags.forget_script_flags: only this repository's flags are forgotten."""
from absl import flags

from utils.cli import flags as cli_flags


def test_forget_keeps_installed_packages_flags_even_with_venv_inside_the_checkout():
    import advtest_others
    advtest_others.define_flags()
    assert "attack_method" in flags.FLAGS and "verbosity" in flags.FLAGS
    cli_flags.forget_script_flags()
    assert "attack_method" not in flags.FLAGS
    assert "verbosity" in flags.FLAGS      # absl.logging's, installed under .venv/
    advtest_others.define_flags()          # the script's flags come back, defined afresh
    assert flags.FLAGS["attack_method"].default == flags.FLAGS["attack_method"].value


def test_defined_here_tells_repository_modules_from_installed_ones():
    assert cli_flags._defined_here("utils.cli.flags")
    assert not cli_flags._defined_here("absl.logging")
