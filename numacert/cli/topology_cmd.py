"""`numacert topology`: placeholder until the sysfs collector lands (being written this session)."""

import click


@click.command()
def topology() -> None:
    """Print the local machine's topology."""
    raise click.ClickException("topology is not implemented yet")
