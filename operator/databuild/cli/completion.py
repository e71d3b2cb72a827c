"""Shell completion, computed from the argument parser itself so it never drifts from it.

``databuild completion bash|zsh`` prints a script that asks ``databuild __complete
WORDS...`` for candidates. kubectl (1.26 and later) completes a plugin's arguments by
running ``kubectl_complete-<plugin>`` with the words typed so far; that executable prints
the same candidates followed by cobra's directive line (``:4``: do not complete file
names).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["NO_FILES", "SCRIPTS", "candidates"]

#: cobra's ShellCompDirectiveNoFileComp, the last line kubectl expects from a plugin.
NO_FILES = 4

_BASH = r"""# databuild completion for bash: source <(databuild completion bash)
_databuild() {
  local IFS=$'\n' cur="${COMP_WORDS[COMP_CWORD]}"
  local words
  words="$(databuild __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)"
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -o default -F _databuild databuild kubectl-databuild
"""

_ZSH = (
    "# databuild completion for zsh: source <(databuild completion zsh)\n"
    "autoload -U +X bashcompinit && bashcompinit\n" + _BASH.split("\n", 1)[1]
)

SCRIPTS = {"bash": _BASH, "zsh": _ZSH}
"""The completion script of each supported shell."""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps no public list of subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def candidates(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """What may come next after `words` (the last one being the word being typed)."""
    *done, current = list(words) or [""]
    commands = _subcommands(parser)
    active = parser
    options = _options(parser)
    previous: argparse.Action | None = None
    for word in done:
        if previous is not None and previous.nargs != 0:
            previous = None  # that word was the option's value
            continue
        if word in options:
            previous = options[word]
            if previous.nargs == 0:
                previous = None
            continue
        if active is parser and word in commands:
            active = commands[word]
            options = {**options, **_options(active)}
    if previous is not None:
        choices = previous.choices or ()
        return [str(c) for c in choices if str(c).startswith(current)]
    if current.startswith("-"):
        return sorted(o for o in options if o.startswith(current))
    if active is parser:
        return sorted(c for c in commands if c.startswith(current))
    return []
