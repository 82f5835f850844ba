"""Entry point of the `numacert` console script.

Every command raises InputError for bad input; `main` turns it into one line on stderr and
exit status 2, so no user ever sees a traceback for a mistake in a file or a flag.
"""

from __future__ import annotations

import sys

import click

from numacert import __version__
from numacert.errors import InfrastructureError, InputError, NumacertError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3  # infrastructure failed: never reads as a bad node


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="numacert")
def cli() -> None:
    """Certify that Kubernetes nodes give NUMA-aligned CPUs, memory and hugepages."""


def _register() -> None:
    # Imported here so that each command module stays independent of the others.
    from numacert.cli import lab_cmd, predict_cmd, restore_cmd, run_cmd, topology_cmd

    cli.add_command(predict_cmd.predict)
    cli.add_command(topology_cmd.topology)
    cli.add_command(lab_cmd.lab)
    cli.add_command(run_cmd.run)
    cli.add_command(restore_cmd.restore)
    cli.add_command(__import__("numacert.cli.matrix_cmd", fromlist=["_"]).plan)
    cli.add_command(__import__("numacert.cli.catalogue_cmd", fromlist=["_"]).catalogue)
    cli.add_command(__import__("numacert.cli.kind_cmd", fromlist=["_"]).kind)


_register()


def main(argv: list[str] | None = None) -> int:
    try:
        # Without standalone mode click returns the code of a ctx.exit()/Exit(n) instead of
        # raising it: `numacert run` ends with the verdict's code that way.
        code = cli.main(args=argv, prog_name="numacert", standalone_mode=False)
    except InputError as exc:
        click.echo(f"numacert: error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("numacert: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_BAD_INPUT
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except InfrastructureError as exc:
        click.echo(f"numacert: error: {exc}", err=True)
        return EXIT_INCOMPLETE
    except NumacertError as exc:
        click.echo(f"numacert: error: {exc}", err=True)
        return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
