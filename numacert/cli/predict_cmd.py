"""`numacert predict SCENARIO`: what a correct kubelet does with the scenario's pods."""

from __future__ import annotations

import json

import click
import yaml

from numacert.errors import InputError
from numacert.oracle.hints import KubeletStartError
from numacert.oracle.predict import StepError
from numacert.oracle.predict import predict as run_prediction
from numacert.scenario import load_scenario


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Choice(["json", "yaml"]),
    default="json",
    show_default=True,
    help="output format",
)
def predict(scenario: str, output: str) -> None:
    """Predict admission and placement for the pods of a SCENARIO file."""
    sc = load_scenario(scenario)
    try:
        result = run_prediction(
            sc.topology,
            sc.kubelet,
            sc.steps,
            sc.cpu_state,
            sc.memory_state,
            allocatable=sc.allocatable,
            k8s_minor=sc.k8s_minor,
        )
    except KubeletStartError as exc:
        field = getattr(exc, "field", "kubelet")
        raise InputError(f"the kubelet would not start: {exc}", f"{sc.path}: {field}") from None
    except StepError as exc:
        raise InputError(exc.message, f"{sc.path}: steps[{exc.index}]") from None
    if output == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(yaml.safe_dump(result, sort_keys=False), nl=False)
