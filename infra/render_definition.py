"""Embed the generated Step Functions definition in ``infra/template.yaml``.

The state machine's ``DefinitionString`` is exactly what ``lakehouse state-machine`` prints
(``ecommerce_lakehouse_sfn.definition_json``) with every name left as a ``${Placeholder}``
that the template's ``DefinitionSubstitutions`` fill. Two stack parameters change the
definition itself, so the template holds four variants chosen with ``Fn::If``:

* ``EnableCrawler`` (condition ``CrawlerEnabled``): the crawler states, with the crawler's
  name as the ``${CrawlerName}`` placeholder (``LAKEHOUSE_CRAWLER=${CrawlerName}``);
* ``ForeignKeySeverity`` (condition ``ForeignKeysAreErrors``): the foreign-key terms of the
  Athena gate (``LAKEHOUSE_FK_SEVERITY``).

The crawler's Delta targets are generated too, one per curated table of the entity catalogue
(``SCHEMAS``), so a new entity needs no edit of the template.

Only the lines between the marker comments are rewritten::

    .venv/bin/python infra/render_definition.py           # rewrite the block
    .venv/bin/python infra/render_definition.py --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse.domain.types import Severity
from ecommerce_lakehouse.domain.zones import table_key
from ecommerce_lakehouse_sfn import StateMachineSettings, definition_json
from ecommerce_lakehouse_sfn.settings import CRAWLER_ENV, FK_SEVERITY_ENV, placeholder

TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
BEGIN = "# BEGIN generated: lakehouse state-machine"
END = "# END generated: lakehouse state-machine"
CRAWLER_BEGIN = "# BEGIN generated: crawler targets"
CRAWLER_END = "# END generated: crawler targets"
#: The lake bucket's name as the template spells it.
LAKE_BUCKET = "${AWS::StackName}-lake-${AWS::AccountId}-${AWS::Region}"
#: The command that refreshes the block (quoted in errors and in the marker line).
COMMAND = ".venv/bin/python infra/render_definition.py"
CRAWLER_CONDITION = "CrawlerEnabled"
FK_CONDITION = "ForeignKeysAreErrors"
CRAWLER_PLACEHOLDER = placeholder("CrawlerName")


def variant_environment(*, crawler: bool, severity: Severity) -> dict[str, str]:
    """The ``LAKEHOUSE_*`` variables under which ``lakehouse state-machine`` prints a variant."""
    environ = {FK_SEVERITY_ENV: severity.value}
    if crawler:
        environ[CRAWLER_ENV] = CRAWLER_PLACEHOLDER
    return environ


def generated_definition(*, crawler: bool, severity: Severity) -> str:
    """One variant of the definition, exactly as ``lakehouse state-machine`` prints it."""
    environ = variant_environment(crawler=crawler, severity=severity)
    return definition_json(StateMachineSettings.from_env(environ))


def _literal(text: str, indent: str) -> list[str]:
    # A YAML literal block keeps the JSON byte for byte (clip chomping: one final newline).
    return [f"{indent}|", *(f"{indent}  {line}" if line else "" for line in text.splitlines())]


def _choice(condition: str, when_true: list[str], when_false: list[str], indent: str) -> list[str]:
    """``Fn::If: [condition, when_true, when_false]`` in block style at ``indent``."""
    return [
        f"{indent}Fn::If:",
        f"{indent}  - {condition}",
        f"{indent}  - {when_true[0].lstrip()}",
        *when_true[1:],
        f"{indent}  - {when_false[0].lstrip()}",
        *when_false[1:],
    ]


def render_block(indent: str) -> list[str]:
    """The marked block (markers included) at the indentation of the marker lines."""

    def by_severity(crawler: bool, at: str) -> list[str]:
        inner = at + "    "  # the scalars sit under "  - " of the inner Fn::If
        error = _literal(generated_definition(crawler=crawler, severity=Severity.ERROR), inner)
        warn = _literal(generated_definition(crawler=crawler, severity=Severity.WARN), inner)
        return _choice(FK_CONDITION, error, warn, at)

    outer = indent + "  "
    with_crawler = by_severity(True, outer + "    ")
    without = by_severity(False, outer + "    ")
    return [
        f"{indent}{BEGIN} (do not edit: run `{COMMAND}`)",
        f"{indent}DefinitionString:",
        *_choice(CRAWLER_CONDITION, with_crawler, without, outer),
        f"{indent}{END}",
    ]


def render_crawler_targets(indent: str) -> list[str]:
    """The crawler's ``DeltaTables`` items, one per curated table, with their markers."""
    return [
        f"{indent}{CRAWLER_BEGIN} (do not edit: run `{COMMAND}`)",
        *(f'{indent}- !Sub "s3://{LAKE_BUCKET}/{table_key(s.name)}"' for s in SCHEMAS),
        f"{indent}{CRAWLER_END}",
    ]


class MarkersMissing(ValueError):
    """The template lacks the BEGIN/END marker lines (or has them out of order)."""


def render(template: str) -> str:
    """``template`` with the marked blocks regenerated; everything else is kept as is.

    Raises:
        MarkersMissing: the template lacks one of the single BEGIN ... END blocks.
    """
    lines = template.splitlines()
    blocks = ((BEGIN, END, render_block), (CRAWLER_BEGIN, CRAWLER_END, render_crawler_targets))
    for begin, end, block in blocks:
        begins = [i for i, line in enumerate(lines) if line.lstrip().startswith(begin)]
        ends = [i for i, line in enumerate(lines) if line.lstrip().startswith(end)]
        if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
            raise MarkersMissing(f"expected one '{begin}' line followed by one '{end}' line")
        start, stop = begins[0], ends[0]
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        lines = [*lines[:start], *block(indent), *lines[stop + 1 :]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (or, with ``--check``, verify) the generated block of the template.

    Returns:
        0 when the block is (now) up to date, 1 when ``--check`` found it stale, 2 when the
        template cannot be read or has no marked block.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the template to update")
    parser.add_argument(
        "--check", action="store_true", help="only report whether the block is up to date"
    )
    args = parser.parse_args(argv)
    try:
        current = args.template.read_text(encoding="utf-8")
        wanted = render(current)
    except (OSError, MarkersMissing) as error:
        print(f"render_definition: {error}", file=sys.stderr)
        return 2
    if wanted == current:
        return 0
    if args.check:
        print(
            f"render_definition: the state machine in {args.template} is out of date: "
            f"run `{COMMAND}`",
            file=sys.stderr,
        )
        return 1
    args.template.write_text(wanted, encoding="utf-8")
    print(f"render_definition: updated {args.template}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
