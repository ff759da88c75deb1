"""``hangar lineage``: where a model version, run or dataset came from, or what was made from it."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option


def _label(node) -> str:
    from rich.markup import escape

    text = f"[bold]{node.type}[/bold] {escape(node.label)}"
    return text if node.id in node.label else f"{text} [dim]{escape(node.id)}[/dim]"


def render(graph):
    """A rich Tree of the graph from its root; a node reached twice is expanded once."""
    from rich.tree import Tree

    nodes = {n.key: n for n in graph.nodes}
    children: dict[str, list[str]] = {}
    for e in graph.edges:
        parent, child = (e.src, e.dst) if graph.direction == "downstream" else (e.dst, e.src)
        children.setdefault(parent, []).append(child)
    tree = Tree(_label(graph.root))
    expanded = {graph.root.key}
    stack = [(tree, graph.root.key)]
    while stack:
        branch, key = stack.pop()
        pending = []
        for child in children.get(key, []):
            if child in expanded:
                branch.add(_label(nodes[child]) + " [dim](shown above)[/dim]")
                continue
            expanded.add(child)
            pending.append((branch.add(_label(nodes[child])), child))
        stack.extend(reversed(pending))
    return tree


@click.command()
@click.argument("node_type", metavar="TYPE_OR_URI")
@click.argument("node_id", metavar="[ID]", required=False)
@click.option("--direction", type=click.Choice(["upstream", "downstream"]), default="upstream", show_default=True,
              help="upstream: what it came from; downstream: what was made from it.")
@click.option("--depth", "max_depth", default=10, show_default=True, type=click.IntRange(0, 100))
@json_option
def lineage(node_type, node_id, direction, max_depth, as_json):
    """Lineage: what a node came from (upstream) or what was made from it (downstream).

    Name the node as TYPE ID (TYPE: dataset, run, logged_model, model_version, endpoint,
    batch_job, table; a model version's ID is catalog.schema.model/N, a dataset's is its id or
    name@digest), or as one URI: models:/name/N, models:/name@alias, models:/<logged-model-id>,
    runs:/<run-id>."""
    from rich.console import Console

    from hangar.catalog.client import Client

    c = Client()  # the local store, or a server (HANGAR_TRACKING_URI=http://...)
    try:
        graph = c.get_lineage(node_type, direction=direction, max_depth=max_depth, entity_id=node_id)
    finally:
        c.store.close()
    if as_json:
        return emit_json(graph.to_dict())
    console = Console()
    console.print(f"{direction} lineage of {graph.root.type} {graph.root.label}", markup=False, highlight=False)
    console.print(render(graph))
