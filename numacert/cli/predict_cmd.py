"""`numacert predict SCENARIO`: placeholder until the oracle lands (being written this session)."""

import click


@click.command()
@click.argument("scenario", type=click.Path())
@click.option("--output", type=click.Choice(["json", "yaml"]), default="json")
def predict(scenario: str, output: str) -> None:
    """Predict admission and placement for the pods of a scenario file."""
    raise click.ClickException("predict is not implemented yet")
